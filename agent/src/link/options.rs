//! rumqttc options from the agent's settings.

use crate::config::Settings;
use edgefleet_protocol::encode;
use edgefleet_protocol::topic::{Topic, TopicKind};
use edgefleet_protocol::uplink::{OfflineReason, Presence, PresenceState};
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

/// Errors building the options.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The last-will payload could not be encoded.
    #[error("cannot encode last will: {0}")]
    Will(#[from] edgefleet_protocol::WireError),
}

/// Client id = device id; persistent session (commands queued while offline are delivered);
/// explicit keep-alive and packet size limits; last will = retained `Offline(ConnectionLost)`.
pub fn mqtt_options(settings: &Settings, boot_id: u64) -> Result<MqttOptions, OptionsError> {
    let mut options = MqttOptions::new(settings.device_id.as_str(), settings.broker.host.clone(), settings.broker.port);
    options.set_keep_alive(settings.mqtt.keep_alive);
    options.set_clean_session(false);
    options.set_max_packet_size(settings.mqtt.max_packet_bytes, settings.mqtt.max_packet_bytes);
    options.set_inflight(100);
    let will_topic = Topic::new(&settings.namespace, &settings.device_id, TopicKind::Presence).to_string();
    let will = encode(&Presence { state: PresenceState::Offline(OfflineReason::ConnectionLost), boot_id })?;
    options.set_last_will(LastWill::new(will_topic, will, QoS::AtLeastOnce, true));
    if settings.broker.tls {
        // rumqttc is built without a default crypto provider: use ring (cross-build friendly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = match &settings.mqtt.ca_file {
            Some(path) => {
                let ca = std::fs::read(path)
                    .map_err(|source| OptionsError::CaFile { path: path.display().to_string(), source })?;
                Transport::Tls(TlsConfiguration::Simple { ca, alpn: None, client_auth: None })
            }
            None => Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    Ok(options)
}

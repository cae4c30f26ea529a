//! The body of every refused request.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": "..."}`: what happened and what to do, with a 4xx or 5xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}

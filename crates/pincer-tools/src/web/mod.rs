//! The web tools: `web_fetch` under the SSRF policy, and `web_search`.

pub mod fetch;
pub mod search;
pub mod ssrf;

pub use fetch::WebFetch;
pub use search::WebSearch;
pub use ssrf::{HostResolver, SsrfPolicy, StaticResolver, SystemResolver};

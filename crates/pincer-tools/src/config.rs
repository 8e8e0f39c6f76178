//! The `tools.*` and `mcp.servers.*` configuration sections: they live in `pincer-core`'s
//! [`Config`](pincer_core::Config) (`pincer_core::tools_config`) and are re-exported here.

pub use pincer_core::tools_config::*;

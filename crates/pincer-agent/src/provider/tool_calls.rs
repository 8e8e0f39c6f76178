//! Tool calls assembled from the pieces a reply brings. OpenAI streams each call under an `index`:
//! the id and name come with its first piece, the `arguments` text in any number of pieces after
//! (some servers repeat the id, or send a whole call at once). Anthropic streams a `tool_use`
//! content block at an `index`, then `input_json_delta` pieces into it. Either way the pieces of one
//! call are joined in arrival order, and the calls keep the order they first appeared in.

use super::ToolCall;

/// The calls of one reply, being assembled.
#[derive(Debug, Default)]
pub(crate) struct ToolCallParts {
    calls: Vec<Part>,
}

#[derive(Debug)]
struct Part {
    key: u64,
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallParts {
    /// Adds a piece to the call at stream position `key`; its first piece creates it. An id or
    /// name is taken from the first piece that carries one.
    pub fn piece(&mut self, key: u64, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let index = match self.calls.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                self.calls.push(Part { key, id: String::new(), name: String::new(), arguments: String::new() });
                self.calls.len() - 1
            }
        };
        let part = &mut self.calls[index];
        if let Some(id) = id.filter(|id| !id.is_empty())
            && part.id.is_empty()
        {
            part.id = id.to_string();
        }
        if let Some(name) = name.filter(|n| !n.is_empty())
            && part.name.is_empty()
        {
            part.name = name.to_string();
        }
        part.arguments.push_str(arguments);
    }

    /// The key of the call with this id, if one has it (for servers that send no `index`).
    pub fn key_of_id(&self, id: &str) -> Option<u64> {
        self.calls.iter().find(|p| !id.is_empty() && p.id == id).map(|p| p.key)
    }

    /// A key no call has yet.
    pub fn next_key(&self) -> u64 {
        self.calls.iter().map(|p| p.key + 1).max().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The finished calls: a call without an id gets `<prefix><n>`, and empty arguments are `{}`.
    pub fn finish(self, prefix: &str) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(n, p)| ToolCall {
                id: if p.id.is_empty() { format!("{prefix}{n}") } else { p.id },
                name: p.name,
                arguments: if p.arguments.trim().is_empty() { "{}".to_string() } else { p.arguments },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_per_call_in_first_seen_order() {
        let mut parts = ToolCallParts::default();
        parts.piece(1, Some("call_b"), Some("web_fetch"), "");
        parts.piece(0, Some("call_a"), Some("read"), "{\"pa");
        parts.piece(1, None, None, "{\"url\":");
        parts.piece(0, Some("call_a"), Some("read"), "th\":\"x\"}");
        parts.piece(1, None, None, "\"https://e.x\"}");
        parts.piece(2, None, Some("exec"), "");
        let calls = parts.finish("call_");
        let got: Vec<(&str, &str, &str)> =
            calls.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str())).collect();
        assert_eq!(
            got,
            [
                ("call_b", "web_fetch", "{\"url\":\"https://e.x\"}"),
                ("call_a", "read", "{\"path\":\"x\"}"),
                ("call_2", "exec", "{}"),
            ]
        );
    }
}

//! A check serde's derived `Deserialize` does not make: a struct may also be written as a list of
//! its fields in order, so `gateway: [18789, "lan"]` reads as `{port: 18789, bind: "lan"}` and an
//! internally tagged enum as `["every", 60000]`. Closed schemas refuse that; [`list_for_object`]
//! finds where it happened by comparing the input with the typed value serialised back.

use serde_json::Value;

/// The first path (`gateway`, `models.providers.local.models[0]`, `""` for the root) where `typed`
/// — the parsed value serialised back — holds an object but `input` holds a list.
pub fn list_for_object(input: &Value, typed: &Value) -> Option<String> {
    walk(input, typed, &mut String::new())
}

/// `"{path}: invalid type: sequence, expected an object"`, in serde's words.
pub fn list_for_object_error(path: &str) -> String {
    if path.is_empty() {
        "invalid type: sequence, expected an object".to_string()
    } else {
        format!("{path}: invalid type: sequence, expected an object")
    }
}

fn walk(input: &Value, typed: &Value, path: &mut String) -> Option<String> {
    match (input, typed) {
        (Value::Array(_), Value::Object(_)) => Some(path.clone()),
        (Value::Object(input), Value::Object(typed)) => input.iter().find_map(|(key, value)| {
            let child = typed.get(key)?;
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = walk(value, child, path);
            path.truncate(len);
            found
        }),
        (Value::Array(input), Value::Array(typed)) => input.iter().zip(typed).enumerate().find_map(|(i, (a, b))| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = walk(a, b, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_lists_where_objects_belong() {
        let typed = json!({"gateway": {"port": 1, "bind": "lan"}, "models": [{"id": "a"}], "tags": [1, 2]});
        assert_eq!(list_for_object(&json!({"gateway": {"port": 1}, "tags": [1]}), &typed), None);
        assert_eq!(list_for_object(&json!({"gateway": [1, "lan"]}), &typed).as_deref(), Some("gateway"));
        assert_eq!(list_for_object(&json!({"models": [["a"]]}), &typed).as_deref(), Some("models[0]"));
        assert_eq!(list_for_object(&json!([]), &typed).as_deref(), Some(""));
        assert_eq!(list_for_object_error("models[0]"), "models[0]: invalid type: sequence, expected an object");
    }
}

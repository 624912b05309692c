//! Response shaping: the body the client gets once the items of an upstream
//! answer were labelled and filtered. REST arrays, search envelopes
//! (`total_count` + `items`) and single objects keep their shape; GraphQL
//! answers keep their `{"data": …}` envelope with the filtered connection
//! (`nodes`/`edges`) and its `totalCount` updated. Everything else in the
//! upstream answer (headers included) is the caller's to keep.

use serde_json::{Map, Value};

/// Where the labelled items were taken from in the upstream JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemsAt<'a> {
    /// Path labels: item `i` is element `i` of the array at this JSON
    /// Pointer (`""`: the root array, or the root object as one item).
    Path(&'a str),
    /// The guard returned the items themselves (legacy `items` output);
    /// their positions in the upstream JSON are unknown.
    Detached,
}

/// The body of an answer whose labelled data the agent may not see at all,
/// in the upstream's shape: `[]` for an array, `{"data":null}` for a
/// GraphQL answer, `{}` for another object, `[]` for anything else.
pub fn empty_body(original: &Value) -> &'static str {
    match original {
        Value::Array(_) => "[]",
        Value::Object(object) if object.contains_key("data") => r#"{"data":null}"#,
        Value::Object(_) => "{}",
        _ => "[]",
    }
}

/// The array at a JSON Pointer, mutably.
fn array_at_mut<'v>(root: &'v mut Value, pointer: &str) -> Option<&'v mut Vec<Value>> {
    if pointer.is_empty() || pointer == "/" {
        return root.as_array_mut();
    }
    let pointer = if pointer.starts_with('/') {
        std::borrow::Cow::Borrowed(pointer)
    } else {
        std::borrow::Cow::Owned(format!("/{pointer}"))
    };
    root.pointer_mut(&pointer)?.as_array_mut()
}

/// The parent object of the value at a JSON Pointer.
fn parent_at_mut<'v>(root: &'v mut Value, pointer: &str) -> Option<&'v mut Map<String, Value>> {
    let pointer = pointer.strip_suffix('/').unwrap_or(pointer);
    let parent = match pointer.rfind('/') {
        Some(at) => &pointer[..at],
        None => "",
    };
    if parent.is_empty() {
        return root.as_object_mut();
    }
    root.pointer_mut(parent)?.as_object_mut()
}

/// Keeps the elements of `array` at the `accessible` positions, in order.
fn retain_positions(array: &mut Vec<Value>, accessible: &[usize]) {
    let kept: Vec<Value> = accessible
        .iter()
        .filter_map(|&index| array.get_mut(index).map(std::mem::take))
        .collect();
    *array = kept;
}

fn data_of(items: &[guardway_difc::LabeledItem], accessible: &[usize]) -> Vec<Value> {
    accessible
        .iter()
        .filter_map(|&index| items.get(index).map(|item| item.data.clone()))
        .collect()
}

/// The filtered body of a REST answer. `original` is the parsed upstream
/// JSON, `items` the labelled items and `accessible` the positions of the
/// items the agent may see, in order.
///
/// - Root array: the accessible elements.
/// - Items under a path (search envelopes): the answer with that array
///   cut down; a top-level `total_count` becomes the number kept and
///   `incomplete_results` false.
/// - A single object labelled as one item: itself, or `[]` when filtered.
/// - Detached items: their data as an array, re-wrapped into a search
///   envelope, a single element unwrapped when the answer was an object.
pub fn rest_body(
    mut original: Value,
    items: &[guardway_difc::LabeledItem],
    accessible: &[usize],
    at: ItemsAt<'_>,
) -> Value {
    match at {
        ItemsAt::Path(path) if path.is_empty() || path == "/" => match original {
            Value::Array(mut array) => {
                retain_positions(&mut array, accessible);
                Value::Array(array)
            }
            // The whole answer was one item.
            single if !accessible.is_empty() => single,
            _ => Value::Array(Vec::new()),
        },
        ItemsAt::Path(path) => match array_at_mut(&mut original, path) {
            Some(array) => {
                retain_positions(array, accessible);
                let kept = accessible.len();
                if let Some(envelope) = original.as_object_mut()
                    && envelope.contains_key("total_count")
                {
                    envelope.insert("total_count".to_owned(), Value::from(kept));
                    envelope.insert("incomplete_results".to_owned(), Value::Bool(false));
                }
                original
            }
            // The guard's path does not lead to an array here: nothing of
            // the answer can be vouched for.
            None => Value::Array(data_of(items, accessible)),
        },
        ItemsAt::Detached => {
            let kept = data_of(items, accessible);
            rewrap_detached(&original, kept)
        }
    }
}

/// Detached items: into the search envelope they came from, or unwrapped
/// from a one-element array when the answer was a single object.
fn rewrap_detached(original: &Value, kept: Vec<Value>) -> Value {
    let Some(object) = original.as_object() else {
        return Value::Array(kept);
    };
    if object.contains_key("total_count") {
        let mut envelope = object.clone();
        if let Some(key) = ["items", "repositories"]
            .into_iter()
            .find(|key| envelope.contains_key(*key))
        {
            envelope.insert(key.to_owned(), Value::Array(kept.clone()));
        }
        envelope.insert("total_count".to_owned(), Value::from(kept.len()));
        envelope.insert("incomplete_results".to_owned(), Value::Bool(false));
        return Value::Object(envelope);
    }
    if !object.contains_key("data") && kept.len() == 1 {
        return kept.into_iter().next().unwrap_or(Value::Null);
    }
    Value::Array(kept)
}

/// The filtered body of a GraphQL answer (some items were filtered):
/// `{"data": null}` when none is accessible or no connection can be found,
/// else the answer with the labelled connection holding the accessible
/// nodes and its `totalCount` updated. The connection is the array at the
/// items path when it is one, else the first `nodes`/`edges` array of
/// `data` in document order.
pub fn graphql_body(
    mut original: Value,
    items: &[guardway_difc::LabeledItem],
    accessible: &[usize],
    at: ItemsAt<'_>,
) -> Value {
    let null_data = || serde_json::json!({"data": null});
    if accessible.is_empty() || original.get("data").is_none() {
        return null_data();
    }
    if let ItemsAt::Path(path) = at
        && !path.is_empty()
        && path != "/"
        && let Some(array) = array_at_mut(&mut original, path)
    {
        retain_positions(array, accessible);
        if let Some(parent) = parent_at_mut(&mut original, path)
            && parent.contains_key("totalCount")
        {
            parent.insert("totalCount".to_owned(), Value::from(accessible.len()));
        }
        return original;
    }
    let kept = data_of(items, accessible);
    let Some(data) = original.get_mut("data") else {
        return null_data();
    };
    if replace_first_connection(data, kept) {
        original
    } else {
        null_data()
    }
}

/// Replaces the first `nodes` (else `edges`) array found depth-first in
/// document order, and the `totalCount` beside it.
fn replace_first_connection(value: &mut Value, kept: Vec<Value>) -> bool {
    let Some(keys) = first_connection(value) else {
        return false;
    };
    let mut current = value;
    for key in &keys {
        let Some(next) = current.get_mut(key.as_str()) else {
            return false;
        };
        current = next;
    }
    let Some(object) = current.as_object_mut() else {
        return false;
    };
    let key = if object.contains_key("nodes") {
        "nodes"
    } else {
        "edges"
    };
    let count = kept.len();
    object.insert(key.to_owned(), Value::Array(kept));
    if object.contains_key("totalCount") {
        object.insert("totalCount".to_owned(), Value::from(count));
    }
    true
}

/// The keys leading to the first object holding `nodes` or `edges`.
fn first_connection(value: &Value) -> Option<Vec<String>> {
    let object = value.as_object()?;
    if object.contains_key("nodes") || object.contains_key("edges") {
        return Some(Vec::new());
    }
    object.iter().find_map(|(key, child)| {
        let mut keys = first_connection(child)?;
        keys.insert(0, key.clone());
        Some(keys)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardway_difc::{ItemLabels, LabeledItem};
    use serde_json::json;

    fn items_of(values: &[Value]) -> Vec<LabeledItem> {
        values
            .iter()
            .map(|data| LabeledItem {
                data: data.clone(),
                labels: ItemLabels::default(),
            })
            .collect()
    }

    #[test]
    fn empty_bodies_keep_the_shape() {
        assert_eq!(empty_body(&json!([1, 2])), "[]");
        assert_eq!(empty_body(&json!([])), "[]");
        assert_eq!(
            empty_body(&json!({"data": {"repository": null}})),
            r#"{"data":null}"#
        );
        assert_eq!(empty_body(&json!({"id": 123, "name": "test"})), "{}");
        assert_eq!(empty_body(&Value::Null), "[]");
        assert_eq!(empty_body(&json!("text")), "[]");
    }

    #[test]
    fn root_arrays_keep_accessible_elements_in_order() {
        let original = json!([{"id": 1}, {"id": 2}, {"id": 3}]);
        let items = items_of(original.as_array().unwrap());
        let body = rest_body(original, &items, &[0, 2], ItemsAt::Path(""));
        assert_eq!(body, json!([{"id": 1}, {"id": 3}]));
    }

    #[test]
    fn search_envelopes_are_cut_and_recounted() {
        let original = json!({"total_count": 10, "incomplete_results": true, "items": [{"n": 1}, {"n": 2}, {"n": 3}]});
        let items = items_of(original["items"].as_array().unwrap());
        let body = rest_body(original, &items, &[1], ItemsAt::Path("/items"));
        assert_eq!(
            body,
            json!({"total_count": 1, "incomplete_results": false, "items": [{"n": 2}]})
        );
    }

    #[test]
    fn items_under_a_path_without_total_count() {
        let original = json!({"workflow_runs": [{"id": 1}, {"id": 2}], "other": true});
        let items = items_of(original["workflow_runs"].as_array().unwrap());
        let body = rest_body(original, &items, &[], ItemsAt::Path("workflow_runs"));
        assert_eq!(body, json!({"workflow_runs": [], "other": true}));
    }

    #[test]
    fn a_path_that_is_not_an_array_returns_only_the_accessible_items() {
        let original = json!({"items": {"a": 1}});
        let items = items_of(&[json!({"x": 1})]);
        assert_eq!(
            rest_body(original, &items, &[0], ItemsAt::Path("/items")),
            json!([{"x": 1}])
        );
    }

    #[test]
    fn single_objects_stay_objects_or_become_empty_arrays() {
        let original = json!({"name": "README.md", "path": "README.md"});
        let items = items_of(std::slice::from_ref(&original));
        assert_eq!(
            rest_body(original.clone(), &items, &[0], ItemsAt::Path("")),
            original
        );
        assert_eq!(
            rest_body(original, &items, &[], ItemsAt::Path("")),
            json!([])
        );
    }

    #[test]
    fn detached_items_are_rewrapped_or_unwrapped() {
        let search =
            json!({"total_count": 10, "incomplete_results": true, "items": ["a", "b", "c"]});
        let items = items_of(&[json!("a"), json!("b"), json!("c")]);
        assert_eq!(
            rest_body(search, &items, &[0, 1], ItemsAt::Detached),
            json!({"total_count": 2, "incomplete_results": false, "items": ["a", "b"]})
        );
        let repos = json!({"total_count": 2, "repositories": [1, 2]});
        let items = items_of(&[json!(1), json!(2)]);
        assert_eq!(
            rest_body(repos, &items, &[1], ItemsAt::Detached),
            json!({"total_count": 1, "incomplete_results": false, "repositories": [2]})
        );
        let single = json!({"name": "README.md"});
        let items = items_of(std::slice::from_ref(&single));
        assert_eq!(
            rest_body(single.clone(), &items, &[0], ItemsAt::Detached),
            single
        );
        let array = json!([{"id": 1}]);
        let items = items_of(array.as_array().unwrap());
        assert_eq!(
            rest_body(array.clone(), &items, &[0], ItemsAt::Detached),
            array
        );
        let dir = json!({"name": "dir"});
        let items = items_of(&[json!({"a": "1"}), json!({"b": "2"})]);
        assert_eq!(
            rest_body(dir, &items, &[0, 1], ItemsAt::Detached),
            json!([{"a": "1"}, {"b": "2"}])
        );
    }

    #[test]
    fn graphql_connection_at_the_items_path() {
        let original = json!({"data": {"repository": {"issues": {"totalCount": 5, "nodes": ["a", "b", "c", "d", "e"]}}}});
        let items = items_of(&[json!("a"), json!("b"), json!("c"), json!("d"), json!("e")]);
        let body = graphql_body(
            original,
            &items,
            &[0, 3],
            ItemsAt::Path("/data/repository/issues/nodes"),
        );
        assert_eq!(
            body,
            json!({"data": {"repository": {"issues": {"totalCount": 2, "nodes": ["a", "d"]}}}})
        );
    }

    #[test]
    fn graphql_first_connection_without_a_path() {
        let original = json!({"data": {"viewer": {"login": "x"}, "repository": {"pullRequests": {"totalCount": 3, "edges": [1, 2, 3]}}}});
        let items = items_of(&[json!(1), json!(2), json!(3)]);
        let body = graphql_body(original, &items, &[2], ItemsAt::Detached);
        assert_eq!(
            body,
            json!({"data": {"viewer": {"login": "x"}, "repository": {"pullRequests": {"totalCount": 1, "edges": [3]}}}})
        );
    }

    #[test]
    fn graphql_null_data_when_nothing_is_left_or_no_connection() {
        let viewer = json!({"data": {"viewer": {"login": "octocat"}}});
        let items = items_of(&[json!({"login": "octocat"})]);
        assert_eq!(
            graphql_body(viewer.clone(), &items, &[], ItemsAt::Path("")),
            json!({"data": null})
        );
        assert_eq!(
            graphql_body(viewer, &items, &[0], ItemsAt::Detached),
            json!({"data": null})
        );
        assert_eq!(
            graphql_body(json!("x"), &items, &[0], ItemsAt::Detached),
            json!({"data": null})
        );
    }
}

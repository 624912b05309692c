//! Filtering labelled response items and building what the client sees: the accessible items as
//! one JSON text block, the `[Filtered]` notice, or a denial (spec difc.md §4.3, §6 logging record).

use std::fmt;

use serde_json::{Map, Value, json};

use crate::evaluator::{Evaluation, LabelView, evaluate};
use crate::json_text::write_reference_json;
use crate::labels::LabelPair;
use crate::mode::{EnforcementMode, Operation};
use crate::payload::LabeledItem;

/// Items listed one by one in the `[Filtered]` notice at most.
const NOTICE_DETAIL_LIMIT: usize = 5;

/// An item the agent may not see, with the evaluation that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredItem {
    /// Position in the labelled items.
    pub index: usize,
    pub evaluation: Evaluation,
}

impl FilteredItem {
    /// A denial that asks to add secrecy tags.
    pub fn is_secrecy_violation(&self) -> bool {
        self.evaluation.is_secrecy_violation()
    }
}

/// Which policy removed the filtered items, as named in client texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterPolicy {
    /// Every filtered item violated secrecy.
    Secrecy,
    /// No filtered item violated secrecy.
    Integrity,
    /// Both kinds.
    Access,
}

impl fmt::Display for FilterPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterPolicy::Secrecy => "secrecy policy",
            FilterPolicy::Integrity => "integrity policy",
            FilterPolicy::Access => "access policy",
        })
    }
}

/// The split of labelled items into accessible and filtered ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    pub total: usize,
    /// Indexes of accessible items, in original order.
    pub accessible: Vec<usize>,
    /// Filtered items, in original order.
    pub filtered: Vec<FilteredItem>,
}

/// Evaluates every item with the call's operation and mode; allowed items
/// (including propagated reads) are accessible, the rest filtered.
pub fn filter_items(
    agent: &LabelPair,
    items: &[LabeledItem],
    operation: Operation,
    mode: EnforcementMode,
) -> FilterOutcome {
    let mut accessible = Vec::with_capacity(items.len());
    let mut filtered = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let evaluation = evaluate(agent, LabelView::from(&item.labels), operation, mode);
        if evaluation.is_allowed() {
            accessible.push(index);
        } else {
            filtered.push(FilteredItem { index, evaluation });
        }
    }
    FilterOutcome {
        total: items.len(),
        accessible,
        filtered,
    }
}

/// A labelled response the client may not receive. `Display` is the text
/// of the JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseDenial {
    /// Strict mode and at least one item filtered.
    StrictBlocked {
        filtered: usize,
        total: usize,
        agent_id: String,
    },
    /// A single-resource tool whose only item was filtered.
    SingleItem {
        description: String,
        policy: FilterPolicy,
        reason: String,
    },
}

impl fmt::Display for ResponseDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseDenial::StrictBlocked {
                filtered,
                total,
                agent_id,
            } => write!(
                f,
                "DIFC policy violation: {filtered} of {total} items in response are not accessible to agent {agent_id}"
            ),
            ResponseDenial::SingleItem {
                description,
                policy,
                reason,
            } => {
                let description = if description.is_empty() {
                    "resource"
                } else {
                    description
                };
                write!(
                    f,
                    "[Filtered] {description} exists but is not accessible \u{2014} filtered by {policy}"
                )?;
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
        }
    }
}

/// What the client receives for a labelled response.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientView {
    /// A successful `CallToolResult` JSON.
    Result(Value),
    /// A JSON-RPC error with this text.
    Denied(ResponseDenial),
}

impl FilterOutcome {
    /// The policy named in texts about the filtered items.
    pub fn policy(&self) -> FilterPolicy {
        let secrecy = self
            .filtered
            .iter()
            .filter(|item| item.is_secrecy_violation())
            .count();
        if secrecy == self.filtered.len() {
            FilterPolicy::Secrecy
        } else if secrecy == 0 {
            FilterPolicy::Integrity
        } else {
            FilterPolicy::Access
        }
    }

    /// The client's view of the response. `tool_name` may carry an
    /// `<server>___` prefix, which is ignored.
    pub fn client_view(
        &self,
        items: &[LabeledItem],
        mode: EnforcementMode,
        tool_name: &str,
        agent_id: &str,
    ) -> ClientView {
        if mode == EnforcementMode::Strict && !self.filtered.is_empty() {
            return ClientView::Denied(ResponseDenial::StrictBlocked {
                filtered: self.filtered.len(),
                total: self.total,
                agent_id: agent_id.to_owned(),
            });
        }
        let bare_tool = tool_name
            .split_once("___")
            .map_or(tool_name, |(_, tool)| tool);
        let lists_many = bare_tool.starts_with("list_") || bare_tool.starts_with("search_");
        if let [only] = self.filtered.as_slice()
            && !lists_many
            && self.accessible.is_empty()
        {
            return ClientView::Denied(ResponseDenial::SingleItem {
                description: description_of(items, only.index).to_owned(),
                policy: self.policy(),
                reason: only.evaluation.reason.clone(),
            });
        }
        let mut text = String::with_capacity(64 * self.accessible.len() + 2);
        text.push('[');
        let accessible = self.accessible.iter().filter_map(|&index| items.get(index));
        for (position, item) in accessible.enumerate() {
            if position > 0 {
                text.push(',');
            }
            write_reference_json(&mut text, &item.data);
        }
        text.push(']');
        let mut content = vec![json!({"type": "text", "text": text})];
        if !self.filtered.is_empty() {
            content.push(json!({"type": "text", "text": self.notice(items)}));
        }
        ClientView::Result(json!({"content": content, "isError": false}))
    }

    /// The `[Filtered] …` notice about removed items.
    pub fn notice(&self, items: &[LabeledItem]) -> String {
        let count = self.filtered.len();
        let mut text = format!(
            "[Filtered] {count} item(s) in this response were removed by {} and are not shown",
            self.policy()
        );
        let parts: Vec<String> = if count <= NOTICE_DETAIL_LIMIT {
            self.filtered
                .iter()
                .filter_map(|item| {
                    let description = description_of(items, item.index);
                    let reason = item.evaluation.reason.as_str();
                    match (description.is_empty(), reason.is_empty()) {
                        (false, false) => Some(format!("{description} ({reason})")),
                        (false, true) => Some(description.to_owned()),
                        (true, false) => Some(reason.to_owned()),
                        (true, true) => None,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        if !parts.is_empty() {
            text.push_str(": ");
            text.push_str(&parts.join("; "));
        }
        text.push('.');
        text
    }
}

fn description_of(items: &[LabeledItem], index: usize) -> &str {
    items
        .get(index)
        .map_or("", |item| item.labels.description.as_str())
}

/// The outcome of filtering together with the client's view.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredResponse {
    pub outcome: FilterOutcome,
    pub view: ClientView,
}

/// Filters `items` and builds the client's view in one step.
pub fn filter_response(
    agent: &LabelPair,
    items: &[LabeledItem],
    operation: Operation,
    mode: EnforcementMode,
    tool_name: &str,
    agent_id: &str,
) -> FilteredResponse {
    let outcome = filter_items(agent, items, operation, mode);
    let view = outcome.client_view(items, mode, tool_name, agent_id);
    FilteredResponse { outcome, view }
}

/// The JSONL record of one filtered item (`difc-filtered/v2`) without its
/// `timestamp`, which the caller adds.
pub fn filtered_item_record(
    server_id: &str,
    tool_name: &str,
    item: &LabeledItem,
    filtered: &FilteredItem,
) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("event".into(), "difc_filtered".into());
    record.insert("_schema".into(), "difc-filtered/v2".into());
    record.insert("server_id".into(), server_id.into());
    record.insert("tool_name".into(), tool_name.into());
    record.insert("description".into(), item.labels.description.clone().into());
    record.insert("reason".into(), filtered.evaluation.reason.clone().into());
    record.insert("secrecy_tags".into(), json!(item.labels.secrecy));
    record.insert("integrity_tags".into(), json!(item.labels.integrity));
    if let Value::Object(data) = &item.data {
        let text = |value: Option<&Value>| match value {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => String::new(),
        };
        let author_login = {
            let user = text(data.get("user").and_then(|user| user.get("login")));
            if user.is_empty() {
                text(data.get("author").and_then(|author| author.get("login")))
            } else {
                user
            }
        };
        let fields = [
            ("author_association", text(data.get("author_association"))),
            ("author_login", author_login),
            ("html_url", text(data.get("html_url"))),
            ("number", text(data.get("number"))),
            ("sha", text(data.get("sha"))),
        ];
        for (key, value) in fields {
            if !value.is_empty() {
                record.insert(key.into(), value.into());
            }
        }
    }
    record
}

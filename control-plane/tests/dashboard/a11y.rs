//! What a screen reader is given: Chromium's own accessibility tree, read through ChromeDriver's
//! DevTools bridge (`goog/cdp/execute`, `Accessibility.getFullAXTree`). The browser computes
//! each node's role and accessible name there by the ARIA and HTML-AAM rules, so a check on it
//! tests the page as assistive technology sees it, not as a script in the page guesses.
//! No screen reader itself runs here (none drives headless Chromium on these machines).

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

use crate::browser::Browser;

/// Roles a person operates or reads a value from: each needs a name.
const NAMED_ROLES: &[&str] = &[
    "button",
    "link",
    "textbox",
    "searchbox",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "switch",
    "slider",
    "spinbutton",
    "tab",
    "menuitem",
    "progressbar",
    "meter",
    "dialog",
    "alertdialog",
    "img",
    "table",
];

/// A DevTools command sent through ChromeDriver.
#[derive(Debug)]
struct Cdp {
    method: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.method, "params": self.params});
        (Method::POST, Some(body.to_string()))
    }
}

/// One node of the tree, as far as the checks need it.
#[derive(Debug, Clone)]
pub(crate) struct AxNode {
    pub(crate) role: String,
    pub(crate) name: String,
    /// `level` of a heading, 0 for other nodes.
    pub(crate) level: u64,
}

impl Browser {
    /// The nodes of the current page's accessibility tree that assistive technology is given
    /// (ignored nodes left out), in document order.
    pub(crate) async fn ax_tree(&self) -> Vec<AxNode> {
        self.c
            .issue_cmd(Cdp {
                method: "Accessibility.enable",
                params: json!({}),
            })
            .await
            .expect("Accessibility.enable");
        let tree = self
            .c
            .issue_cmd(Cdp {
                method: "Accessibility.getFullAXTree",
                params: json!({}),
            })
            .await
            .expect("Accessibility.getFullAXTree");
        let text = |v: &Value| v["value"].as_str().unwrap_or_default().trim().to_string();
        tree["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["ignored"] != json!(true))
            .map(|n| AxNode {
                role: text(&n["role"]),
                name: text(&n["name"]),
                level: n["properties"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == "level")
                    .and_then(|p| p["value"]["value"].as_u64())
                    .unwrap_or(0),
            })
            .collect()
    }

    /// The nodes a screen reader would announce without a name ("button", "link", …):
    /// `role` and the count of such nodes checked.
    pub(crate) async fn unnamed_controls(&self) -> (usize, Vec<String>) {
        let nodes = self.ax_tree().await;
        let checked: Vec<&AxNode> = nodes
            .iter()
            .filter(|n| NAMED_ROLES.contains(&n.role.as_str()))
            .collect();
        let bad = checked
            .iter()
            .filter(|n| n.name.is_empty())
            .map(|n| n.role.clone())
            .collect();
        (checked.len(), bad)
    }
}

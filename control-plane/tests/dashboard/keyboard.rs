//! The keyboard without the mouse: pressing keys and chords, typing, what has focus, tabbing
//! until focus lands somewhere, and the sweep for controls a keyboard or screen reader cannot
//! use.

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use serde_json::json;

use crate::browser::Browser;

impl Browser {
    /// Presses `keys` together (`[Key::Shift, Key::Tab]` is Shift+Tab) at whatever has focus.
    pub(crate) async fn press(&self, keys: &[Key]) {
        let mut seq = KeyActions::new("keyboard".to_string());
        for k in keys {
            seq = seq.then(KeyAction::Down {
                value: char::from(*k),
            });
        }
        for k in keys.iter().rev() {
            seq = seq.then(KeyAction::Up {
                value: char::from(*k),
            });
        }
        self.c.perform_actions(seq).await.unwrap();
    }

    /// Types `text` at whatever has focus, one key at a time.
    pub(crate) async fn type_keys(&self, text: &str) {
        let mut seq = KeyActions::new("keyboard".to_string());
        for ch in text.chars() {
            seq = seq
                .then(KeyAction::Down { value: ch })
                .then(KeyAction::Up { value: ch });
        }
        self.c.perform_actions(seq).await.unwrap();
    }

    /// What has focus: its test id, else its id, else its tag.
    pub(crate) async fn focused(&self) -> String {
        let v = self
            .c
            .execute(
                "const e = document.activeElement; \
                 return e ? (e.dataset.testid || e.id || e.tagName) : '';",
                vec![],
            )
            .await
            .unwrap();
        v.as_str().unwrap_or_default().to_string()
    }

    /// Presses `keys` until what has focus matches `css`, at most `max` times; a panic listing
    /// where focus went when it never does.
    pub(crate) async fn keys_until(&self, keys: &[Key], css: &str, max: usize) {
        let mut trail = Vec::new();
        for _ in 0..=max {
            let here = self
                .c
                .execute(
                    "const e = document.activeElement; \
                     return Boolean(e && e.matches(arguments[0]));",
                    vec![json!(css)],
                )
                .await
                .unwrap();
            if here == json!(true) {
                return;
            }
            trail.push(self.focused().await);
            self.press(keys).await;
        }
        self.shot(&format!("failed-focus-{}", trail.len())).await;
        panic!(
            "[{}] focus never reached {css}: {}",
            self.label,
            trail.join(" > ")
        );
    }
}

/// The controls under `arguments[0]` that are shown but neither take focus nor are disabled,
/// or have no accessible name (aria-label, aria-labelledby, a label, their text, a title):
/// `{checked, bad}` with HTML excerpts of the bad ones.
pub(crate) const UNREACHABLE_OR_UNNAMED: &str = r#"
const nameOf = (el) => {
  const aria = (el.getAttribute('aria-label') || '').trim();
  if (aria) return aria;
  const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
    .map((id) => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  if (by) return by;
  const labels = [...(el.labels || [])].map((l) => l.textContent).join(' ').trim();
  if (labels) return labels;
  if (!['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName)) {
    const own = (el.textContent || '').trim();
    if (own) return own;
  }
  return (el.getAttribute('title') || '').trim();
};
const bad = [];
let checked = 0;
const sel = 'a[href], button, input, select, textarea, summary, [role=button], [role=link]';
for (const el of document.querySelector(arguments[0]).querySelectorAll(sel)) {
  if (!el.getClientRects().length) continue;
  checked += 1;
  if (!(el.tabIndex >= 0 || el.disabled) || !nameOf(el)) bad.push(el.outerHTML.slice(0, 200));
}
return { checked, bad };
"#;

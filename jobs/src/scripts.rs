//! The Lua scripts, loaded once per process. Each has `common.lua` prepended, so the retry
//! decision and event shape exist once.
use std::sync::LazyLock;

use redis::Script;

const COMMON: &str = include_str!("../scripts/common.lua");

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

pub(crate) struct Scripts {
    pub enqueue: Script,
    pub claim: Script,
    pub renew: Script,
    pub finish: Script,
    pub reap: Script,
    pub cancel: Script,
    pub persisted: Script,
    pub progress: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: with_common(include_str!("../scripts/enqueue.lua")),
    claim: with_common(include_str!("../scripts/claim.lua")),
    renew: with_common(include_str!("../scripts/renew.lua")),
    finish: with_common(include_str!("../scripts/finish.lua")),
    reap: with_common(include_str!("../scripts/reap.lua")),
    cancel: with_common(include_str!("../scripts/cancel.lua")),
    persisted: with_common(include_str!("../scripts/persisted.lua")),
    progress: with_common(include_str!("../scripts/progress.lua")),
});

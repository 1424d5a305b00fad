//! The Statistics section's GPU cards filled: two GPU workers publish their heartbeats, one
//! with fresh readings of three GPUs (one of them unreadable) and one whose readings expired,
//! and a super admin looks.

use serde_json::{Value, json};

use crate::browser::{Browser, WAIT, until};
use crate::common::Env;
use crate::fixtures::{ROOT, expire_readings, gpu_heartbeat, h100, root};
use voxfleet_jobs::fleet::GpuStats;

/// Every GPU card as the page shows it, sorted by worker and GPU: its data attributes, name,
/// badges (text and class), the line under the name, the VRAM bar (its accessible value, the
/// fill's width as set and as drawn, in percent of the bar) and figures, the key-value list,
/// the readings note, the source of the readings, and whether anything spills out of the card.
const GPU_CARDS: &str = r#"
const text = (e) => (e ? e.textContent : null);
return [...document.querySelectorAll('[data-testid="gpu-card"]')].map((c) => {
  const bar = c.querySelector('[role="progressbar"]');
  const fill = bar && bar.querySelector('.bar-fill');
  const width = (e) => e.getBoundingClientRect().width;
  const kv = {};
  for (const dt of c.querySelectorAll('dl.kv dt')) kv[dt.textContent] = text(dt.nextElementSibling);
  const read = text(c.querySelector('p.small')) || '';
  return {
    worker: c.dataset.worker,
    gpu: c.dataset.index ?? null,
    readings: c.dataset.readings,
    stale: c.classList.contains('gpu-stale'),
    name: text(c.querySelector('h3')),
    badges: [...c.querySelectorAll('.badge')].map((e) => [e.textContent, e.className]),
    place: text(c.querySelector('p.muted:not(.small)')),
    vram: text(c.querySelector('.meter-val')),
    bar: bar && {
      label: bar.getAttribute('aria-label'),
      now: bar.getAttribute('aria-valuenow'),
      width: fill.style.width,
      drawn: Math.round((100 * width(fill)) / width(bar)),
      warn: bar.classList.contains('bar-warn'),
    },
    kv,
    note: text(c.querySelector('.alert')),
    source: (read.match(/\(([^)]*)\)$/) || [])[1] ?? null,
    spills: c.scrollWidth > c.clientWidth,
  };
}).sort((a, b) => `${a.worker}/${a.gpu}`.localeCompare(`${b.worker}/${b.gpu}`));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_statistics_section_shows_each_gpu_and_marks_stale_readings() {
    let env = Env::start().await;
    let base = env.base.clone();
    root(&env).await;
    // These readings stand in for NVML, which cannot run on this machine: it has no GPU, so no
    // worker here reads one. From the heartbeat on (Redis, `/v1/stats`, the page) all is real.
    gpu_heartbeat(
        &env,
        "gpu-box-1",
        "rack-a-01",
        vec![
            h100(0, 20, 87, 61, 412.3),
            h100(1, 76, 100, 74, 688.9),
            // as the worker reports a GPU that NVML could not read
            GpuStats::unreadable(2),
        ],
    )
    .await;
    gpu_heartbeat(
        &env,
        "gpu-box-2",
        "rack-b-07",
        vec![h100(0, 40, 55, 58, 301.0)],
    )
    .await;
    expire_readings(&env, "gpu-box-2").await;

    let b = Browser::start(&env, "super-admin").await;
    b.sign_in(&base, ROOT.0, ROOT.1).await;
    b.section("stats").await;
    let cards = until!(b, "the GPU cards", WAIT, {
        let v = b.c.execute(GPU_CARDS, vec![]).await.ok()?;
        (v.as_array()?.len() == 4).then_some(v)
    });
    b.c.execute(
        "document.querySelector('[data-testid=\"gpu-card\"]').scrollIntoView({ block: 'center' })",
        vec![],
    )
    .await
    .unwrap();
    b.shot("stats-gpus").await;

    // The page formats numbers in the browser's locale: "20.0 GiB" or "20,0 GiB".
    let point =
        b.c.execute(
            "return new Intl.NumberFormat().format(1.5).charAt(1)",
            vec![],
        )
        .await
        .unwrap();
    let gib = |n: u32| format!("{n}{}0 GiB", point.as_str().unwrap());
    let h100_card = |gpu: u32, used: u32, percent: u32, kv: Value| {
        json!({
            "worker": "gpu-box-1",
            "gpu": gpu.to_string(),
            "readings": "fresh",
            "stale": false,
            "name": "NVIDIA H100 80GB HBM3",
            "badges": [["healthy", "badge badge-ok"]],
            "place": format!("gpu-box-1 · GPU {gpu} · rack-a-01"),
            "vram": format!("{} / {}", gib(used), gib(80)),
            "bar": {
                "label": format!("VRAM of GPU {gpu} on gpu-box-1"),
                "now": percent.to_string(),
                "width": format!("{percent}%"),
                "drawn": percent,
                // the warning colour from 90 % of the memory
                "warn": percent >= 90,
            },
            "kv": kv,
            "note": null,
            "source": "heartbeat",
            "spills": false,
        })
    };
    let want = json!([
        h100_card(
            0,
            20,
            25,
            json!({
                "Free": gib(60),
                "Utilisation": "87 %",
                "Temperature": "61 °C",
                "Power": "412 W",
            }),
        ),
        h100_card(
            1,
            76,
            95,
            json!({
                "Free": gib(4),
                "Utilisation": "100 %",
                "Temperature": "74 °C",
                "Power": "689 W",
            }),
        ),
        // NVML could not read it: no zeros shown as figures, no bar.
        {
            "worker": "gpu-box-1",
            "gpu": "2",
            "readings": "fresh",
            "stale": false,
            "name": "GPU 2",
            "badges": [["unreadable", "badge badge-danger"]],
            "place": "gpu-box-1 · GPU 2 · rack-a-01",
            "vram": "—",
            "bar": null,
            "kv": {
                "Free": "—",
                "Utilisation": "—",
                "Temperature": "—",
                "Power": "—",
            },
            "note": null,
            "source": "heartbeat",
            "spills": false,
        },
        // The expired readings: one card for the worker, marked stale, none of its old numbers.
        {
            "worker": "gpu-box-2",
            "gpu": null,
            "readings": "stale",
            "stale": true,
            "name": "gpu-box-2",
            "badges": [["stale", "badge badge-warn"]],
            "place": "rack-b-07",
            "vram": null,
            "bar": null,
            "kv": {},
            "note": "Readings expired; a fresh reading was requested and will show when it \
                     arrives.",
            "source": null,
            "spills": false,
        },
    ]);
    assert_eq!(cards, want, "the GPU cards");
    b.close().await;
}

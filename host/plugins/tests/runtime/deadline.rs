//! A plugin's deadline counts its own running time. A guest that yields (every epoch tick) and
//! then waits for its thread while other work runs there is not charged for the wait, so a busy
//! host does not use up a plugin's deadline for it; a wall-clock bound of twice the deadline still
//! ends every call.

use std::time::{Duration, Instant};

use wasmswitch_plugin_artifacts::FAULTY;
use wasmswitch_plugins::{PluginError, RuntimeConfig, harness};

use super::incoming;

// One thread (a current-thread runtime) for the looping plugin and a task that blocks it in
// 10 ms chunks: the loop runs only between the chunks.
#[tokio::test]
async fn time_spent_waiting_for_the_thread_is_not_charged_to_the_plugin() {
    let deadline = Duration::from_millis(50);
    let rt = super::runtime(RuntimeConfig {
        deadline,
        fuel_metering: false,
        cache_dir: Some(super::cache_dir()),
        ..harness::default_config()
    });
    let faulty = super::load(&rt, "t", "faulty", 1, FAULTY);
    let mut instance = faulty.instantiate(Default::default()).await.unwrap();

    let hog = tokio::spawn(async {
        for _ in 0..12 {
            tokio::task::yield_now().await;
            // Blocks the only thread, as a busy neighbour would.
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let started = Instant::now();
    let err = instance.on_event(&incoming("loop")).await.unwrap_err();
    let took = started.elapsed();
    hog.await.unwrap();

    assert_eq!(err, PluginError::Timeout { deadline });
    // Charged by the wall clock, the loop would have been stopped about 50 ms in (60 ms at most,
    // a chunk later). Charged by its own running time it ran until the chunks had taken their
    // share: to the wall-clock bound (twice the deadline) here.
    assert!(
        took >= Duration::from_millis(85),
        "stopped after {took:?}: the wait for the thread was charged to the plugin"
    );
    assert!(
        took < Duration::from_millis(1_000),
        "stopped late: {took:?}"
    );
}

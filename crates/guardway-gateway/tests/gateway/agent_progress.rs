//! Progress of per-agent stdio backend processes: two agents calling the
//! same stdio backend at the same time, whose calls carry the same progress
//! token on their own processes, each receive exactly their own progress.

use crate::common;

use std::collections::BTreeMap;

use guardway_gateway::Gateway;
use guardway_gateway::config::RoutingMode;
use serde_json::json;

/// Steps each agent's calls report; different, so that progress that
/// reached the wrong agent shows.
const FIRST_STEPS: usize = 3;
const SECOND_STEPS: usize = 7;
const ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_calls_of_two_agents_keep_their_own_progress() {
    common::init_tracing();
    let everything = common::stdio_server(
        "node".into(),
        vec![
            common::everything_server().to_string_lossy().into_owned(),
            "stdio".into(),
        ],
    );
    let gw = Gateway::start(common::options(
        BTreeMap::from([("everything".to_owned(), everything)]),
        RoutingMode::Routed,
    ))
    .await
    .unwrap();
    let url = format!("http://{}/mcp/everything", gw.local_addr());
    let first_log = common::ProgressLog::default();
    let second_log = common::ProgressLog::default();
    let first = common::progress_logging_agent(&url, Some("agent-first"), &first_log).await;
    let second = common::progress_logging_agent(&url, Some("agent-second"), &second_log).await;

    // Every round both agents make one call, so the gateway's progress
    // tokens on the two agents' processes stay equal round after round.
    let call = |steps: usize| {
        common::call(
            "trigger-long-running-operation",
            json!({"duration": 1, "steps": steps}),
        )
    };
    for round in 0..ROUNDS {
        let (first_result, second_result) = tokio::join!(
            first.call_tool(call(FIRST_STEPS)),
            second.call_tool(call(SECOND_STEPS)),
        );
        let first_result = first_result.unwrap();
        let second_result = second_result.unwrap();
        assert!(common::text_of(&first_result).contains("completed"));
        assert!(common::text_of(&second_result).contains("completed"));
        let expected = |steps: usize| (1..=steps).map(|i| i as f64).collect::<Vec<_>>();
        assert_eq!(first_log.take(), expected(FIRST_STEPS), "round {round}");
        assert_eq!(second_log.take(), expected(SECOND_STEPS), "round {round}");
    }
    // Each agent has a process of its own.
    assert_eq!(
        gw.backend("everything")
            .unwrap()
            .agent_process_count()
            .await,
        2
    );
    assert_eq!(gw.pending_progress_routes(), 0);
    first.cancel().await.unwrap();
    second.cancel().await.unwrap();
    gw.shutdown().await;
}

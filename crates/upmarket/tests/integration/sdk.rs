//! The official SDKs from PyPI, unchanged but for the host, against a running upmarket.

use std::process::Command;

use upmarket_store::Store;

use crate::{open_store, repo_root, Server, WRITE_KEY};

/// The Python that has the SDKs (scripts/test installs them into .venv).
fn python() -> String {
    if let Ok(p) = std::env::var("UPMARKET_PYTHON") {
        return p;
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

#[derive(serde::Deserialize, Debug)]
struct Expected {
    message_id: String,
    person: String,
    workspace: Option<String>,
    company: Option<String>,
}

fn send(sdk: &str, url: &str) -> Vec<Expected> {
    let script = repo_root().join("tests/sdk/send_events.py");
    let out = Command::new(python())
        .arg(&script)
        .args([sdk, url, WRITE_KEY])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the {sdk} SDK script failed (install the SDKs with scripts/test or pip install -r tests/sdk/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints its expectations as JSON")
}

#[test]
fn official_sdks_deliver_every_event_with_identity() {
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(work.path());
    let mut expected = Vec::new();
    for sdk in ["segment", "rudder", "posthog"] {
        let e = send(sdk, &server.url);
        assert!(e.len() >= 10, "{sdk} sent {} events", e.len());
        expected.push((sdk, e));
    }
    let data_dir = server.stop();
    let store = open_store(&data_dir);
    let reader = store.reader().unwrap();
    for (sdk, events) in &expected {
        let ids: Vec<String> = events.iter().map(|e| e.message_id.clone()).collect();
        let counts = reader.message_counts(&ids).unwrap();
        for e in events {
            assert_eq!(counts[&e.message_id], 1, "{sdk}: {e:?} stored once");
            let got = reader.attribution(&e.message_id).unwrap().expect("stored");
            assert_eq!(
                (
                    got.person.as_str(),
                    got.workspace_id.as_deref(),
                    got.company_id.as_deref()
                ),
                (
                    e.person.as_str(),
                    e.workspace.as_deref(),
                    e.company.as_deref()
                ),
                "{sdk}: attribution of {}",
                e.message_id
            );
        }
    }
}

//! Configuration: one TOML file, then environment variables, then command-line flags (each
//! later source wins). The file is read into [`RawConfig`], which rejects unknown keys by name,
//! then [`RawConfig::build`] validates it into [`Config`]. The environment is passed in as a map
//! so that tests stay hermetic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use upmarket_core::identity::DEFAULT_FREE_MAIL_DOMAINS;
use upmarket_core::{FreeMailDomains, IngestLimits};

/// A configuration problem, naming the file, key or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// File path.
        path: String,
        /// The TOML parser's message (it names the key and line).
        message: String,
    },
    /// The model file is invalid (the error names file, field and expectation).
    #[error("{0}")]
    Model(upmarket_core::model::ModelError),
    /// A value is out of range or malformed.
    #[error("config `{key}`: {message}")]
    Invalid {
        /// The key (or environment variable) at fault.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The file, as written. Every field is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Where the database lives.
    pub data_dir: Option<PathBuf>,
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[ingest]`.
    #[serde(default)]
    pub ingest: RawIngest,
    /// `[api]`.
    #[serde(default)]
    pub api: RawApi,
    /// `[identity]`.
    #[serde(default)]
    pub identity: RawIdentity,
    /// `[scoring]`.
    #[serde(default)]
    pub scoring: RawScoring,
}

/// `[scoring]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScoring {
    /// The PQA model file; the built-in default model when unset.
    pub model: Option<PathBuf>,
    /// Seconds between incremental re-scores of accounts touched by new events.
    pub rescore_interval_secs: Option<u64>,
}

/// The built-in default model (`models/default.toml`).
pub const DEFAULT_MODEL: &str = include_str!("../../../models/default.toml");

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on.
    pub listen: Option<String>,
    /// DuckDB's threads in the server.
    pub duckdb_threads: Option<usize>,
}

/// `[ingest]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Keys that may send events.
    pub write_keys: Option<Vec<String>>,
    /// Per-event byte limit.
    pub max_event_bytes: Option<usize>,
    /// Per-request byte limit (after decompression).
    pub max_request_bytes: Option<usize>,
    /// Most events per batch request.
    pub max_batch_events: Option<usize>,
    /// Write requests that may wait for the writer before new ones get 429.
    pub queue_depth: Option<usize>,
    /// Most events the writer makes durable together (group commit: one journal record).
    pub max_commit_events: Option<usize>,
    /// Most acknowledged events waiting to be stored in DuckDB before new requests get 429.
    pub max_unapplied_events: Option<usize>,
    /// How long identity facts of committed events may wait to be written together.
    pub identity_flush_ms: Option<usize>,
    /// Which PostHog group type names the workspace.
    pub posthog_group_type: Option<String>,
}

/// `[api]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Tokens that may read the REST API.
    pub read_tokens: Option<Vec<String>>,
}

/// `[identity]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Replaces the built-in free-mail list.
    pub free_mail_domains: Option<Vec<String>>,
    /// Added to the free-mail list.
    pub extra_free_mail_domains: Option<Vec<String>>,
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Keys that may send events.
    pub write_keys: Vec<String>,
    /// Tokens that may read the REST API.
    pub read_tokens: Vec<String>,
    /// Size limits.
    pub limits: IngestLimits,
    /// Pending write requests before 429.
    pub queue_depth: usize,
    /// Largest group commit, in events.
    pub max_commit_events: usize,
    /// Most acknowledged events waiting for DuckDB before 429.
    pub max_unapplied_events: usize,
    /// How long identity facts of committed events may wait to be written together.
    pub identity_flush: std::time::Duration,
    /// PostHog group type that names the workspace.
    pub posthog_group_type: String,
    /// Domains that never form a company.
    pub free_mail: FreeMailDomains,
    /// The PQA model in force.
    pub model: std::sync::Arc<upmarket_core::model::Model>,
    /// Where the model came from (file path, or "built-in default").
    pub model_origin: String,
    /// Seconds between incremental re-scores.
    pub rescore_interval_secs: u64,
    /// DuckDB's threads for ingestion in `upmarket serve` (default [`default_duckdb_threads`]);
    /// scoring passes, derived tables and checkpoints run on every core.
    pub duckdb_threads: usize,
}

/// DuckDB's threads in the server unless `server.duckdb_threads` says otherwise: half the
/// cores (at least one), the other half handling requests. DuckDB's idle worker threads wait
/// for tasks spinning: with every core (2 here), its scheduler's locks and queues were ~9% of
/// the server's CPU samples under a sustained HTTP load, and one thread took 4.4–5.1 µs of CPU
/// per event against 4.5–5.5 (1M and 10M events, 32 clients; BENCHMARKS.md, session 10).
pub fn default_duckdb_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / 2).max(1)
}

impl Config {
    /// The writer's limits.
    pub fn writer_limits(&self) -> crate::writer::WriterLimits {
        crate::writer::WriterLimits {
            queue_depth: self.queue_depth,
            max_commit_events: self.max_commit_events,
            max_unapplied_events: self.max_unapplied_events,
        }
    }
}

impl RawConfig {
    /// Reads a config file. A missing `path` gives the empty config (all defaults).
    pub fn load(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let Some(path) = path else {
            return Ok(RawConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().to_string(),
        })
    }

    /// Applies the environment (`UPMARKET_*`) and flags, fills defaults and validates.
    pub fn build(
        self,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let list = |key: &str| {
            env.get(key).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env.get("UPMARKET_DATA_DIR").map(PathBuf::from))
            .or(self.data_dir)
            .unwrap_or_else(|| PathBuf::from("upmarket-data"));
        let (listen_key, listen) = match (
            &overrides.listen,
            env.get("UPMARKET_LISTEN"),
            &self.server.listen,
        ) {
            (Some(l), _, _) => ("--listen", l.clone()),
            (None, Some(l), _) => ("UPMARKET_LISTEN", l.clone()),
            (None, None, Some(l)) => ("server.listen", l.clone()),
            (None, None, None) => ("server.listen", "127.0.0.1:8080".to_string()),
        };
        let listen: SocketAddr = listen.parse().map_err(|_| ConfigError::Invalid {
            key: listen_key.into(),
            message: format!("{listen:?} is not an address like 127.0.0.1:8080"),
        })?;
        let write_keys = list("UPMARKET_WRITE_KEYS")
            .or(self.ingest.write_keys)
            .unwrap_or_default();
        let read_tokens = list("UPMARKET_READ_TOKENS")
            .or(self.api.read_tokens)
            .unwrap_or_default();
        for (key, values) in [
            ("ingest.write_keys", &write_keys),
            ("api.read_tokens", &read_tokens),
        ] {
            if let Some(bad) = values.iter().find(|v| v.trim().is_empty() || v.len() < 8) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: format!("{bad:?} is too short: use at least 8 characters"),
                });
            }
        }
        if let Some(shared) = write_keys.iter().find(|k| read_tokens.contains(k)) {
            return Err(ConfigError::Invalid {
                key: "api.read_tokens".into(),
                message: format!("{shared:?} is also a write key; write keys ship inside apps and must not read data"),
            });
        }
        let defaults = IngestLimits::default();
        let limits = IngestLimits {
            max_event_bytes: positive(
                "ingest.max_event_bytes",
                self.ingest.max_event_bytes,
                defaults.max_event_bytes,
            )?,
            max_request_bytes: positive(
                "ingest.max_request_bytes",
                self.ingest.max_request_bytes,
                defaults.max_request_bytes,
            )?,
            max_batch_events: positive(
                "ingest.max_batch_events",
                self.ingest.max_batch_events,
                defaults.max_batch_events,
            )?,
        };
        if limits.max_event_bytes > limits.max_request_bytes {
            return Err(ConfigError::Invalid {
                key: "ingest.max_event_bytes".into(),
                message: "must not exceed ingest.max_request_bytes".into(),
            });
        }
        let free_mail = match self.identity.free_mail_domains {
            Some(list) => FreeMailDomains::new(
                list.iter().map(String::as_str),
                self.identity
                    .extra_free_mail_domains
                    .iter()
                    .flatten()
                    .map(String::as_str),
            ),
            None => FreeMailDomains::new(
                DEFAULT_FREE_MAIL_DOMAINS.iter().copied(),
                self.identity
                    .extra_free_mail_domains
                    .iter()
                    .flatten()
                    .map(String::as_str),
            ),
        };
        let (model_text, model_origin) = match &self.scoring.model {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?,
                path.display().to_string(),
            ),
            None => (
                DEFAULT_MODEL.to_string(),
                "built-in default (models/default.toml)".to_string(),
            ),
        };
        let model = upmarket_core::model::Model::from_toml(&model_text, &model_origin)
            .map_err(ConfigError::Model)?;
        Ok(Config {
            model: std::sync::Arc::new(model),
            model_origin,
            rescore_interval_secs: positive(
                "scoring.rescore_interval_secs",
                self.scoring.rescore_interval_secs.map(|v| v as usize),
                2,
            )? as u64,
            duckdb_threads: self
                .server
                .duckdb_threads
                .map(|n| positive("server.duckdb_threads", Some(n), 1))
                .transpose()?
                .unwrap_or_else(default_duckdb_threads),
            data_dir,
            listen,
            write_keys,
            read_tokens,
            limits,
            queue_depth: positive("ingest.queue_depth", self.ingest.queue_depth, 512)?,
            max_commit_events: positive(
                "ingest.max_commit_events",
                self.ingest.max_commit_events,
                50_000,
            )?,
            max_unapplied_events: positive(
                "ingest.max_unapplied_events",
                self.ingest.max_unapplied_events,
                250_000,
            )?,
            identity_flush: std::time::Duration::from_millis(positive(
                "ingest.identity_flush_ms",
                self.ingest.identity_flush_ms,
                250,
            )? as u64),
            posthog_group_type: self
                .ingest
                .posthog_group_type
                .unwrap_or_else(|| "company".into()),
            free_mail,
        })
    }
}

fn positive(key: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::Invalid {
            key: key.into(),
            message: "must be greater than 0".into(),
        }),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = RawConfig::parse("[ingest]\nwrite_key = ['abc']\n", "up.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("up.toml") && err.contains("write_key"),
            "{err}"
        );
    }

    #[test]
    fn file_then_env_then_flags() {
        let raw = RawConfig::parse("data_dir = 'from-file'\n[server]\nlisten = '127.0.0.1:1'\n[ingest]\nwrite_keys = ['file-key-123']\n", "t").unwrap();
        let env: HashMap<String, String> = [
            ("UPMARKET_LISTEN".to_string(), "127.0.0.1:2".to_string()),
            (
                "UPMARKET_WRITE_KEYS".to_string(),
                "env-key-123, env-key-456".to_string(),
            ),
        ]
        .into();
        let cfg = raw
            .build(
                &env,
                &Overrides {
                    data_dir: Some("from-flag".into()),
                    listen: None,
                },
            )
            .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("from-flag"));
        assert_eq!(cfg.listen.port(), 2);
        assert_eq!(cfg.write_keys, vec!["env-key-123", "env-key-456"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = RawConfig::parse("[ingest]\nmax_batch_events = 0\n", "t")
            .unwrap()
            .build(&HashMap::new(), &Overrides::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config `ingest.max_batch_events`: must be greater than 0"
        );
        let err = RawConfig::parse("[server]\nlisten = 'nowhere'\n", "t")
            .unwrap()
            .build(&HashMap::new(), &Overrides::default())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("config `server.listen`"),
            "{err}"
        );
        let err = RawConfig::parse(
            "[ingest]\nwrite_keys=['same-key-1']\n[api]\nread_tokens=['same-key-1']\n",
            "t",
        )
        .unwrap()
        .build(&HashMap::new(), &Overrides::default())
        .unwrap_err();
        assert!(err.to_string().contains("also a write key"), "{err}");
    }

    #[test]
    fn free_mail_list_is_overridable() {
        let cfg = RawConfig::parse("[identity]\nfree_mail_domains = ['only.example']\nextra_free_mail_domains = ['two.example']\n", "t").unwrap().build(&HashMap::new(), &Overrides::default()).unwrap();
        assert!(
            cfg.free_mail.contains("only.example")
                && cfg.free_mail.contains("two.example")
                && !cfg.free_mail.contains("gmail.com")
        );
    }

    #[test]
    fn duckdb_threads_are_half_the_cores_unless_set() {
        let build = |text: &str| {
            RawConfig::parse(text, "t")
                .unwrap()
                .build(&HashMap::new(), &Overrides::default())
        };
        assert_eq!(build("").unwrap().duckdb_threads, default_duckdb_threads());
        assert!(default_duckdb_threads() >= 1);
        assert_eq!(
            build("[server]\nduckdb_threads = 3\n")
                .unwrap()
                .duckdb_threads,
            3
        );
        assert_eq!(
            build("[server]\nduckdb_threads = 0\n")
                .unwrap_err()
                .to_string(),
            "config `server.duckdb_threads`: must be greater than 0"
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../../upmarket.example.toml");
        RawConfig::parse(text, "upmarket.example.toml")
            .unwrap()
            .build(&HashMap::new(), &Overrides::default())
            .unwrap();
    }
}

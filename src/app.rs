//! Start-up: open the store (running migrations), start the actor tree, recover what was
//! running, pending or paused, and serve HTTP. `Application::build` returns something with
//! `.port()` and `.run_until_stopped()`, so tests can bind port 0.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{dev::Server, middleware, web, App, HttpServer};

use crate::actors::schedule::{LoadAll, ScheduleActor};
use crate::actors::scheduler::{Activate, Enqueue, RegisterUnit, SchedulerActor, SetSupervisor};
use crate::actors::supervisor::{ActiveTasks, Adopt, Supervisor};
use crate::actors::unit_manager::UnitManager;
use crate::actors::units::{LocalUnit, UnitHandle};
use crate::actors::Shared;
use crate::api::{self, AppState};
use crate::auth;
use crate::config::Config;
use crate::domain::TaskStatus;
use crate::events::EventBus;
use crate::scheduler::{Active, UnitSlot};
use crate::store::{tasks as q, Store, StoreError};
use crate::units::{Registry, UnitEnv};

/// How often events older than `event_retention_secs` are deleted.
const EVENT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Builds the server with the built-in task types. Must run inside an actix `System`.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        Self::build_with(config, Registry::builtin()).await
    }

    /// Builds the server with a caller-chosen registry (embedding steward as a library).
    pub async fn build_with(config: Config, registry: Registry) -> Result<Application, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let url = config.effective_database_url();
        let pool_size = config.db_pool_size;
        let store = actix_rt::task::spawn_blocking(move || Store::open(&url, pool_size))
            .await
            .map_err(|_| StoreError::Closed)??;
        log::info!("database: {}", store.backend().name());
        let config = apply_persisted(&store, config).await;

        let roots: Vec<_> = config
            .effective_data_roots()
            .into_iter()
            .map(|r| {
                let _ = std::fs::create_dir_all(&r);
                std::fs::canonicalize(&r).unwrap_or(r)
            })
            .collect();
        let python_module_dirs = if config.python_module_dirs.is_empty() {
            roots.iter().take(1).cloned().collect()
        } else {
            config.python_module_dirs.clone()
        };
        let env = Arc::new(UnitEnv {
            data_roots: roots,
            kill_grace: Duration::from_secs_f64(config.kill_grace_secs),
            python: match &config.venv_dir {
                Some(venv) => venv.join("bin").join("python"),
                None => config.python_path.clone().into(),
            },
            python_module_dirs,
        });
        let registry = Arc::new(registry);
        let listener = TcpListener::bind(&config.bind).map_err(|source| StartError::Bind {
            addr: config.bind.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.bind.clone(),
            source,
        })?;
        let base_url = config.public_url.clone().unwrap_or_else(|| {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            format!("http://{host}:{}", addr.port())
        });
        // The unit registry and the actors reach each other: its address goes into `Shared`
        // before it starts with it.
        let units_ctx = actix::Context::<UnitManager>::new();
        // The bus continues the stored event log's numbering and writes every event to it.
        let last_seq = store.read(crate::store::events::max_seq).await?;
        let events = EventBus::new(last_seq);
        crate::store::events::spawn_writer(store.clone(), events.clone());
        crate::store::events::spawn_pruner(
            store.clone(),
            config.event_retention_secs,
            EVENT_PRUNE_INTERVAL,
        );
        let syslog = crate::syslog::SystemLog::start(store.clone(), &events);
        // Only the binary installs the logger tap; there is one application per process.
        crate::syslog::tap_into(&syslog);
        let active = ActiveTasks::default();
        let shared = Shared {
            active: active.clone(),
            store,
            events,
            registry: registry.clone(),
            config: Arc::new(RwLock::new(Arc::new(config.clone()))),
            env: env.clone(),
            typical: Default::default(),
            units: units_ctx.address(),
            remote_types: Default::default(),
            syslog,
        };

        let scheduler = SchedulerActor::new(shared.clone()).start();
        let supervisor = Supervisor::new(shared.clone(), scheduler.clone(), active.clone()).start();
        let local = LocalUnit::new(registry.clone(), env).start();
        scheduler.do_send(RegisterUnit {
            slot: UnitSlot {
                id: LocalUnit::ID.into(),
                types: registry.types().map(String::from).collect(),
                labels: Default::default(),
                capacity: config.local_unit_capacity,
                load: 0,
                accepting: true,
            },
            handle: UnitHandle::of(LocalUnit::ID, &local),
        });
        let unit_rows = shared.store.read(crate::store::units::all).await?;
        units_ctx.run(UnitManager::new(
            shared.clone(),
            scheduler.clone(),
            base_url,
            UnitManager::local_info(
                registry.types().map(String::from).collect(),
                config.local_unit_capacity,
            ),
            unit_rows,
        ));

        let hooks = crate::webhooks::Hooks::start(
            shared.store.clone(),
            &shared.events,
            shared.config.clone(),
        )
        .await?;
        let ready = Arc::new(AtomicBool::new(false));
        let recovered = Instant::now();
        recover(&shared, &scheduler, &supervisor).await?;
        // Counted before anything is dispatched, and followed from then on.
        let metrics = crate::metrics::Metrics::new();
        seed_metrics(&shared.store, &metrics).await;
        metrics.follow(&shared.events);

        scheduler.do_send(SetSupervisor(supervisor.clone()));
        ready.store(true, Ordering::SeqCst);
        log::info!("recovery done in {:?}", recovered.elapsed());
        shared.syslog.info(
            "server",
            format!(
                "steward {} started on {addr} ({} database)",
                env!("CARGO_PKG_VERSION"),
                shared.store.backend().name()
            ),
        );

        let history: crate::monitor::History = Default::default();
        crate::monitor::Monitor::new(
            shared.clone(),
            history.clone(),
            config.data_dir.clone(),
            metrics.clone(),
        )
        .start();
        // The ScheduleActor and the state reach each other: its address goes into the state
        // before the actor starts with the state.
        let schedule_ctx = actix::Context::<ScheduleActor>::new();
        let state = web::Data::new(AppState {
            history,
            shared,
            scheduler,
            supervisor,
            active,
            metrics,
            schedules: schedule_ctx.address(),
            started: Instant::now(),
            ready,
            hooks,
        });
        let schedules = schedule_ctx.run(ScheduleActor::new(state.clone()));
        schedules.do_send(LoadAll);
        let tokens = auth::Tokens::from_config(&config);
        if tokens.enabled() {
            log::info!(
                "listening on http://{addr} (bearer token required; {} token(s) configured)",
                tokens.len()
            );
        } else {
            log::warn!("listening on http://{addr} WITHOUT authentication (loopback only; set STEWARD_ADMIN_TOKEN or tokens to require a token)");
        }
        let server_state = state.clone();
        let max_body = config.max_body_bytes;
        let tokens = web::Data::new(tokens);
        let tickets = web::Data::new(auth::Tickets::new(Duration::from_secs_f64(
            config.ws_ticket_ttl_secs,
        )));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(server_state.clone())
                .app_data(tokens.clone())
                .app_data(tickets.clone())
                .wrap(middleware::from_fn(auth::require_token))
                .wrap(middleware::from_fn(crate::api::metrics_routes::track))
                .configure(|c| api::configure(c, max_body))
        })
        .listen(listener)
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        if config.http_workers > 0 {
            server = server.workers(config.http_workers);
        }
        Ok(Application {
            port: addr.port(),
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Re-seeds the per-status gauge after bulk deletions.
pub async fn reseed_metrics(state: &AppState) {
    seed_metrics(&state.shared.store, &state.metrics).await;
}

/// Sets the task counts from the store (at start-up, before anything is dispatched, and
/// after bulk deletions).
pub async fn seed_metrics(store: &Store, metrics: &crate::metrics::Metrics) {
    let q = crate::store::tasks::TaskQuery::default();
    match store.read(move |c| q::counts_by_type_status(c, &q)).await {
        Ok(rows) => metrics.seed_counts(&rows),
        Err(e) => log::error!("cannot seed task metrics: {e}"),
    }
}

/// Lays the overrides stored by `PUT /system/config` over the configuration (they come last
/// among the sources); a stored override that no longer validates is ignored, loudly.
async fn apply_persisted(store: &Store, config: Config) -> Config {
    let stored = store
        .read(crate::store::batches::settings_all)
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == crate::api::system::SETTINGS_KEY)
        .and_then(|(_, v)| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&v).ok()
        });
    let Some(overrides) = stored else {
        return config;
    };
    let mut all = config.to_map();
    for (k, v) in overrides {
        all.insert(k, v);
    }
    match Config::from_map(all) {
        Ok(c) => {
            log::info!("applied configuration stored by PUT /system/config");
            c
        }
        Err(e) => {
            log::error!("ignoring the stored configuration: {e}");
            config
        }
    }
}

/// Rebuilds the scheduler and the task actors from the database (SPEC §2.2 crash recovery):
/// running tasks resume from their checkpoint, paused ones stay paused, pending ones queue.
async fn recover(
    shared: &Shared,
    scheduler: &Addr<SchedulerActor>,
    supervisor: &Addr<Supervisor>,
) -> Result<(), StoreError> {
    for b in shared.store.read(crate::store::batches::live).await? {
        scheduler.do_send(crate::actors::scheduler::batches::RegisterBatch {
            id: b.id.clone(),
            limit: b.parallel_limit(),
            paused: b.paused,
            halt_on_failure: b.on_failure == crate::domain::batch::OnFailure::CancelRemaining,
            waits: b
                .depends_on
                .iter()
                .filter_map(|d| crate::actors::scheduler::batches::batch_key(d))
                .collect(),
        });
        supervisor.do_send(crate::actors::supervisor::WatchBatch::changed(b.id));
    }
    let live = shared.store.read(q::live).await?;
    let (mut running, mut paused, mut pending) = (0, 0, Vec::new());
    for task in live {
        match task.status {
            TaskStatus::Pending => pending.push(task),
            TaskStatus::Running | TaskStatus::Paused => {
                if task.status == TaskStatus::Running {
                    running += 1;
                } else {
                    paused += 1;
                }
                scheduler.do_send(Activate {
                    id: task.id,
                    active: Active {
                        task_type: task.task_type.clone(),
                        mutex: task.mutex.clone(),
                        batch: task.batch_id.clone(),
                        unit: None,
                    },
                });
                supervisor.do_send(Adopt { task, unit: None });
            }
            _ => {}
        }
    }
    if running + paused + pending.len() > 0 {
        shared.syslog.info(
            "recovery",
            format!(
                "recovering {running} running, {paused} paused and {} pending task(s)",
                pending.len()
            ),
        );
    }
    scheduler.do_send(Enqueue { tasks: pending });
    Ok(())
}

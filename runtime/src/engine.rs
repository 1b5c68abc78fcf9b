//! The wasmtime engine every guest shares: its configuration, the epoch
//! ticker that drives CPU quotas and kills, and the on-disk cache of
//! compiled components keyed by content digest and engine settings.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use wasmtime::component::Component;

/// Errors of engine set-up and compilation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// wasmtime refused the configuration.
    #[error("creating the wasmtime engine: {0:#}")]
    Config(#[source] wasmtime::Error),
    /// The component does not validate or compile.
    #[error("compiling component {digest}: {source:#}")]
    Compile {
        /// Which component.
        digest: String,
        /// What wasmtime said.
        #[source]
        source: wasmtime::Error,
    },
    /// The compile cache directory is unusable.
    #[error("compile cache {path}: {source}")]
    Cache {
        /// The path involved.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// The shared engine: compile once, run everywhere in this process.
pub struct Engine {
    engine: wasmtime::Engine,
    cache_dir: PathBuf,
    /// Hash of the settings that make compiled code (in)compatible; part of
    /// every cache key so a changed configuration never loads stale code.
    settings_key: String,
    loaded: Mutex<HashMap<String, Component>>,
    /// How many components this engine had to compile (not found in the
    /// cache): what the cache saves is visible, and testable.
    compilations: std::sync::atomic::AtomicU64,
    ticker: Arc<Ticker>,
}

impl Engine {
    /// Creates the engine with epoch interruption on and starts its ticker.
    pub fn new(cache_dir: &Path, tick: Duration) -> Result<Self, Error> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config).map_err(Error::Config)?;
        std::fs::create_dir_all(cache_dir).map_err(|source| Error::Cache {
            path: cache_dir.to_path_buf(),
            source,
        })?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let settings_key = format!("{:016x}", hasher.finish());
        let ticker = Ticker::start(engine.clone(), tick);
        Ok(Engine {
            engine,
            cache_dir: cache_dir.to_path_buf(),
            settings_key,
            loaded: Mutex::new(HashMap::new()),
            compilations: std::sync::atomic::AtomicU64::new(0),
            ticker,
        })
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// Marks a guest as running (the ticker runs only while some guest does);
    /// the returned guard marks it stopped when dropped.
    pub(crate) fn guest_running(&self) -> RunningGuard {
        self.ticker.enter();
        RunningGuard {
            ticker: Arc::clone(&self.ticker),
        }
    }

    /// Returns the compiled component for `digest`: from memory, else from
    /// the disk cache, else compiled from `bytes` and written to the cache.
    pub fn component(
        &self,
        digest: &str,
        bytes: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<Component, Error> {
        if let Some(c) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
        {
            return Ok(c.clone());
        }
        let hex = digest.trim_start_matches("sha256:");
        let path = self
            .cache_dir
            .join(format!("{hex}-{}.cwasm", self.settings_key));
        let component = match self.load_cached(&path) {
            Some(c) => c,
            None => {
                let bytes = bytes().map_err(|source| Error::Cache {
                    path: path.clone(),
                    source,
                })?;
                self.compilations.fetch_add(1, Ordering::Relaxed);
                let compiled =
                    self.engine
                        .precompile_component(&bytes)
                        .map_err(|source| Error::Compile {
                            digest: digest.to_string(),
                            source,
                        })?;
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let written =
                    std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = written {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
                }
                // SAFETY: `compiled` was produced by `precompile_component` of
                // this very engine a moment ago.
                unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(|source| {
                    Error::Compile {
                        digest: digest.to_string(),
                        source,
                    }
                })?
            }
        };
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(digest.to_string(), component.clone());
        Ok(component)
    }

    /// Components compiled so far (rather than loaded from the cache).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: files in the cache directory are written only by
        // `component` above (atomically, via rename) from this engine's
        // `precompile_component`, and wasmtime checks the engine
        // compatibility header; the directory belongs to the server's data
        // dir, which is as trusted as the binary itself.
        match unsafe { Component::deserialize_file(&self.engine, path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding unusable compiled component: {e:#}");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Bumps the engine's epoch every tick while at least one guest is running,
/// and sleeps otherwise, so an idle edge device is not woken a thousand
/// times a second.
struct Ticker {
    running: AtomicUsize,
    stopped: AtomicBool,
    /// The thread waits on `wake` (no guest ran for a while).
    parked: AtomicBool,
    wake: Condvar,
    lock: Mutex<()>,
}

impl Ticker {
    fn start(engine: wasmtime::Engine, tick: Duration) -> Arc<Self> {
        let ticker = Arc::new(Ticker {
            running: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            wake: Condvar::new(),
            lock: Mutex::new(()),
        });
        let t = Arc::clone(&ticker);
        // Short-lived guests come and go: keep ticking a while after the
        // last one ends rather than parking and waking for every one.
        let linger = (Duration::from_millis(100).as_nanos() / tick.as_nanos().max(1)) as u32;
        std::thread::Builder::new()
            .name("wasmkube-epoch".into())
            .spawn(move || {
                let mut idle = 0;
                while !t.stopped.load(Ordering::Acquire) {
                    if t.running.load(Ordering::Acquire) > 0 {
                        idle = 0;
                    } else if idle < linger {
                        idle += 1;
                    } else {
                        let guard = t.lock.lock().unwrap_or_else(|e| e.into_inner());
                        t.parked.store(true, Ordering::Release);
                        let _unused = t
                            .wake
                            .wait_while(guard, |_| {
                                t.running.load(Ordering::Acquire) == 0
                                    && !t.stopped.load(Ordering::Acquire)
                            })
                            .unwrap_or_else(|e| e.into_inner());
                        t.parked.store(false, Ordering::Release);
                        idle = 0;
                        continue;
                    }
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        ticker
    }

    fn enter(&self) {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 && self.parked.load(Ordering::Acquire) {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }
}

/// Keeps the epoch ticker running while a guest runs.
pub(crate) struct RunningGuard {
    ticker: Arc<Ticker>,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.ticker.leave();
    }
}

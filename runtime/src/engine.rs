//! The wasmtime engines guests run on: their configuration, the epoch
//! ticker that drives CPU quotas and kills, and the on-disk cache of
//! compiled components keyed by content digest and engine settings.
//!
//! Commands (`wasi:cli/run`) run on an engine that allocates on demand: a
//! container instantiates once and may run for days. HTTP handlers
//! (`wasi:http/proxy`) get an instance per request, so they run on a
//! second engine whose instances come from a pool reserved in advance
//! (linear memories, tables, stacks reused and reset with copy-on-write),
//! made the first time a handler image is loaded. Where the address space
//! cannot hold the pool, handlers share the commands' engine instead.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
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

/// How many handler instances may be alive at once across the node: the
/// size of the handler pool. Requests beyond it wait for a slot.
pub const HANDLER_INSTANCES: u32 = 256;

/// What a component is compiled and instantiated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A command: instantiated once per container start.
    Command,
    /// An HTTP handler: instantiated per request from the pool.
    Handler,
}

/// Where components are compiled.
#[derive(Debug, Clone, Default)]
pub enum Compiler {
    /// In this process. What Cranelift freed is handed back to the system,
    /// but what its allocations fragmented stays (some tens of MB after a
    /// few images).
    #[default]
    InProcess,
    /// In a child process, `program` with `args`, then
    /// `--output PATH [--pooled]`: it reads the component on stdin and
    /// writes the compiled code to PATH with [`compile_child`]'s engine
    /// settings, so compiling leaves nothing behind in this one. Where the
    /// child fails to start, this process compiles.
    Child {
        /// The program, usually this very binary (`/proc/self/exe`).
        program: PathBuf,
        /// Its arguments before `--output`, e.g. a hidden subcommand.
        args: Vec<String>,
    },
}

/// One wasmtime engine and the components loaded into it.
struct Flavour {
    engine: wasmtime::Engine,
    /// Hash of the settings that make compiled code (in)compatible; part of
    /// every cache key so a changed configuration never loads stale code.
    settings_key: String,
    loaded: Mutex<HashMap<String, Component>>,
    /// One gate per digest being loaded or compiled: the first caller
    /// does the work, the others wait for it and take its result.
    loading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Flavour {
    fn new(config: &wasmtime::Config) -> wasmtime::Result<Self> {
        let engine = wasmtime::Engine::new(config)?;
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Flavour {
            engine,
            settings_key: format!("{:016x}", hasher.finish()),
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        })
    }
}

/// The shared engines: compile once, run everywhere in this process.
pub struct Engine {
    commands: Flavour,
    /// Made on first use; `None` when the pool could not be reserved.
    handlers: Arc<OnceLock<Option<Flavour>>>,
    cache_dir: PathBuf,
    /// How many components this engine had to compile (not found in the
    /// cache): what the cache saves is visible, and testable.
    compilations: std::sync::atomic::AtomicU64,
    compiler: Compiler,
    /// One compilation at a time: each is parallel already, and two at
    /// once would double the peak memory a small device must have.
    compiling: Mutex<()>,
    ticker: Arc<Ticker>,
}

/// The settings both engines share.
fn base_config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

/// The handler engine's settings: the shared ones, instances from a pool.
fn pooled_config() -> wasmtime::Config {
    let mut config = base_config();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool()));
    config
}

/// The handler engine's pool: `HANDLER_INSTANCES` component instances,
/// each with room for several core instances, memories and tables. Linear
/// memories are full 4 GiB wasm32 slots, so a container's memory limit,
/// not the pool, decides how far a handler may grow; they are reserved
/// address space, touched only as guests use them.
fn pool() -> wasmtime::PoolingAllocationConfig {
    let n = HANDLER_INSTANCES;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * 16)
        .total_memories(n * 4)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(1 << 32);
    pool
}

impl Engine {
    /// Creates the commands' engine with epoch interruption on and starts
    /// the ticker.
    pub fn new(cache_dir: &Path, tick: Duration, compiler: Compiler) -> Result<Self, Error> {
        let commands = Flavour::new(&base_config()).map_err(Error::Config)?;
        std::fs::create_dir_all(cache_dir).map_err(|source| Error::Cache {
            path: cache_dir.to_path_buf(),
            source,
        })?;
        let handlers = Arc::new(OnceLock::new());
        let ticker = Ticker::start(commands.engine.clone(), Arc::clone(&handlers), tick);
        Ok(Engine {
            commands,
            handlers,
            cache_dir: cache_dir.to_path_buf(),
            compilations: std::sync::atomic::AtomicU64::new(0),
            compiler,
            compiling: Mutex::new(()),
            ticker,
        })
    }

    /// The commands' wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.commands.engine
    }

    /// The engine HTTP handlers run on: the pooled one, made now if this is
    /// the first handler, or the commands' engine where no pool fits.
    pub fn handlers(&self) -> &wasmtime::Engine {
        &self.flavour(Purpose::Handler).engine
    }

    /// Whether handlers run on a pool of their own.
    pub fn handlers_pooled(&self) -> bool {
        self.pooled().is_some()
    }

    fn pooled(&self) -> Option<&Flavour> {
        self.handlers
            .get_or_init(|| {
                match Flavour::new(&pooled_config()) {
                    Ok(flavour) => Some(flavour),
                    Err(e) => {
                        tracing::warn!(
                            "HTTP handlers are allocated on demand: the instance pool could not be reserved: {e:#}"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    fn flavour(&self, purpose: Purpose) -> &Flavour {
        match purpose {
            Purpose::Command => &self.commands,
            Purpose::Handler => self.pooled().unwrap_or(&self.commands),
        }
    }

    /// Marks a guest as running (the ticker runs only while some guest does);
    /// the returned guard marks it stopped when dropped.
    pub(crate) fn guest_running(&self) -> RunningGuard {
        self.ticker.enter();
        RunningGuard {
            ticker: Arc::clone(&self.ticker),
        }
    }

    /// Returns the compiled component for `digest` on the engine for
    /// `purpose`: from memory, else from the disk cache, else compiled from
    /// `bytes` and written to the cache.
    pub fn component(
        &self,
        digest: &str,
        purpose: Purpose,
        bytes: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<Component, Error> {
        let flavour = self.flavour(purpose);
        let loaded = || {
            flavour
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(digest)
                .cloned()
        };
        if let Some(c) = loaded() {
            return Ok(c);
        }
        // A hundred pods of one new image compile it once.
        let gate = Arc::clone(
            flavour
                .loading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(digest.to_string())
                .or_default(),
        );
        let _turn = gate.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = loaded() {
            return Ok(c);
        }
        let component = self.load_or_compile(flavour, digest, bytes);
        if let Ok(component) = &component {
            flavour
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(digest.to_string(), component.clone());
        }
        flavour
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
        component
    }

    /// The component from the disk cache, else compiled and written there.
    fn load_or_compile(
        &self,
        flavour: &Flavour,
        digest: &str,
        bytes: impl FnOnce() -> std::io::Result<Vec<u8>>,
    ) -> Result<Component, Error> {
        let hex = digest.trim_start_matches("sha256:");
        let path = self
            .cache_dir
            .join(format!("{hex}-{}.cwasm", flavour.settings_key));
        if let Some(c) = load_cached(&flavour.engine, &path) {
            return Ok(c);
        }
        let bytes = bytes().map_err(|source| Error::Cache {
            path: path.clone(),
            source,
        })?;
        let compile_error = |source| Error::Compile {
            digest: digest.to_string(),
            source,
        };
        let _turn = self.compiling.lock().unwrap_or_else(|e| e.into_inner());
        self.compilations.fetch_add(1, Ordering::Relaxed);
        // Two servers on one cache may compile one image at once: each
        // writes its own temporary file, and the last rename wins with the
        // same bytes.
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let tmp = path.with_extension(format!(
            "tmp{}-{}",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let pooled = !std::ptr::eq(flavour, &self.commands);
        if let Compiler::Child { program, args } = &self.compiler {
            match compile_in_child(program, args, &bytes, &tmp, pooled) {
                Ok(()) => {
                    let cached = std::fs::rename(&tmp, &path)
                        .ok()
                        .and_then(|()| load_cached(&flavour.engine, &path));
                    if let Some(c) = cached {
                        return Ok(c);
                    }
                }
                Err(e) => tracing::warn!(digest, "compiling in this process: {e}"),
            }
            let _ = std::fs::remove_file(&tmp);
        }
        let compiled = flavour.engine.precompile_component(&bytes);
        drop(bytes);
        // Cranelift's working memory is free now but still held by the
        // allocator's arenas: give it back.
        crate::heap::release_free();
        let compiled = compiled.map_err(compile_error)?;
        let written = std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = &written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
        }
        // Run from the cache file where there is one: its pages are the page
        // cache's, dropped under pressure and shared with every later load,
        // rather than a private copy.
        match written
            .ok()
            .and_then(|()| load_cached(&flavour.engine, &path))
        {
            Some(c) => Ok(c),
            // SAFETY: `compiled` was produced by `precompile_component` of
            // this very engine a moment ago.
            None => {
                unsafe { Component::deserialize(&flavour.engine, &compiled) }.map_err(compile_error)
            }
        }
    }

    /// Lets go of the components of `digests` (their images were
    /// collected): their compiled code, mapped from files now deleted,
    /// would otherwise stay in memory and hold its disk space.
    pub fn unload(&self, digests: &[String]) {
        let flavours = [
            Some(&self.commands),
            self.handlers.get().and_then(Option::as_ref),
        ];
        for flavour in flavours.into_iter().flatten() {
            let mut loaded = flavour.loaded.lock().unwrap_or_else(|e| e.into_inner());
            for digest in digests {
                loaded.remove(digest);
            }
        }
    }

    /// Components compiled so far (rather than loaded from the cache).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }
}

/// Runs `program args… --output OUTPUT [--pooled]` with `component` on
/// its stdin, as [`Compiler::Child`] describes.
fn compile_in_child(
    program: &Path,
    args: &[String],
    component: &[u8],
    output: &Path,
    pooled: bool,
) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut command = Command::new(program);
    command.args(args).arg("--output").arg(output);
    if pooled {
        command.arg("--pooled");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.display()))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let fed = stdin.write_all(component);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for {}: {e}", program.display()))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{} {}: {}",
            program.display(),
            out.status,
            said.trim()
        ));
    }
    fed.map_err(|e| format!("feeding {}: {e}", program.display()))
}

/// The child's side of [`Compiler::Child`]: compiles the component on
/// stdin for the commands' engine (or, `pooled`, the handlers') and writes
/// the code to `output`. The caller is this crate's engine in another
/// process of the same binary, which checks the code's settings on load.
pub fn compile_child(output: &Path, pooled: bool) -> Result<(), Error> {
    use std::io::Read;
    let config = if pooled {
        pooled_config()
    } else {
        base_config()
    };
    let engine = wasmtime::Engine::new(&config).map_err(Error::Config)?;
    let io = |source| Error::Cache {
        path: output.to_path_buf(),
        source,
    };
    let mut component = Vec::new();
    std::io::stdin().read_to_end(&mut component).map_err(io)?;
    let compiled = engine
        .precompile_component(&component)
        .map_err(|source| Error::Compile {
            digest: "from stdin".into(),
            source,
        })?;
    std::fs::write(output, compiled).map_err(io)
}

fn load_cached(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: files in the cache directory are written only by
    // `Engine::component` (atomically, via rename) from an engine's
    // `precompile_component`, and wasmtime checks the engine compatibility
    // header; the directory belongs to the server's data dir, which is as
    // trusted as the binary itself.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "discarding unusable compiled component: {e:#}");
            let _ = std::fs::remove_file(path);
            None
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
    fn start(
        engine: wasmtime::Engine,
        handlers: Arc<OnceLock<Option<Flavour>>>,
        tick: Duration,
    ) -> Arc<Self> {
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
                    if let Some(Some(handlers)) = handlers.get() {
                        handlers.engine.increment_epoch();
                    }
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

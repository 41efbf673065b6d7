//! A throwaway PostgreSQL cluster started from the machine's own server binaries.
//!
//! `initdb` into a temporary directory, then `postgres` as our direct child, listening on
//! 127.0.0.1 on a free port (and a Unix socket inside the directory), tuned for speed rather
//! than durability (fsync off). When run as root the server runs as the `postgres` user, since
//! initdb refuses root. The server lives in its own process group (so a terminal's Ctrl-C
//! reaches us first and we shut it down in order) and gets `PR_SET_PDEATHSIG`, so it dies even
//! when this tool is killed with SIGKILL. [`Cluster::stop`] (or drop) does a fast shutdown and
//! removes the directory.

use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
pub struct Cluster {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    port: u16,
    url: String,
    log: PathBuf,
}

/// Where the PostgreSQL server binaries are.
#[derive(Debug, Clone)]
pub struct ServerBinaries {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

impl ServerBinaries {
    /// Find `initdb` and `postgres` on PATH, then under `/usr/lib/postgresql/<newest>/bin`.
    pub fn find() -> Result<ServerBinaries> {
        let on_path = |name: &str| -> Option<PathBuf> {
            std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
        };
        if let (Some(initdb), Some(postgres)) = (on_path("initdb"), on_path("postgres")) {
            return Ok(ServerBinaries { initdb, postgres });
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(ServerBinaries { initdb: bin.join("initdb"), postgres: bin.join("postgres") });
        }
        bail!(
            "no PostgreSQL server binaries found (looked for initdb and postgres on PATH and under \
             /usr/lib/postgresql/*/bin).\n  Install the server: `apt-get install -y postgresql` (Debian/Ubuntu), \
             or pass --database-url to use an existing database."
        )
    }
}

/// The uid/gid to run the server as: `None` when we are not root.
fn server_identity() -> Result<Option<(libc::uid_t, libc::gid_t)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer to static storage or NULL; we copy the fields at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` user \
             to run it as.\n  Create one (`useradd --system postgres`) or run mesher-stress as a normal user."
        );
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn chown(path: &Path, uid: libc::uid_t, gid: libc::gid_t) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))
}

/// Configure a command to run as `ident` (when root), in its own process group, and to receive
/// SIGINT (PostgreSQL's fast shutdown) when its parent thread dies.
fn prepare(cmd: &mut Command, ident: Option<(libc::uid_t, libc::gid_t)>) {
    // SAFETY: only async-signal-safe calls (setpgid, setgroups, setgid, setuid, prctl) run in
    // the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((uid, gid)) = ident
                && (libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After the credential change, which would clear it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

impl Cluster {
    /// Start a new cluster with a `mesh` superuser (password `mesh`, trust auth on loopback) and a
    /// `mesher` database. Blocks until the server accepts connections (at most 60 s).
    ///
    /// Call from a long-lived thread (the main thread or a runtime worker), never from a
    /// `spawn_blocking` thread: the server is told to shut down when the thread that started it
    /// exits.
    pub fn start() -> Result<Cluster> {
        let bins = ServerBinaries::find()?;
        let ident = server_identity()?;
        let dir =
            tempfile::Builder::new().prefix("mesher-stress-pg.").tempdir().context("creating a temporary directory")?;
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        if let Some((uid, gid)) = ident {
            chown(dir.path(), uid, gid)?;
        }

        let mut initdb = Command::new(&bins.initdb);
        initdb
            .args(["-D"])
            .arg(&data)
            .args(["-U", "mesh", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        prepare(&mut initdb, ident);
        let out = initdb.output().with_context(|| format!("running {}", bins.initdb.display()))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let mut last_err = None;
        for _attempt in 0..5 {
            let port = free_port()?;
            let logf = std::fs::File::create(&log)?;
            if let Some((uid, gid)) = ident {
                chown(&log, uid, gid)?;
            }
            let mut pg = Command::new(&bins.postgres);
            pg.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(dir.path())
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "TimeZone=UTC",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=128MB",
                ])
                .stdin(Stdio::null())
                .stdout(logf.try_clone()?)
                .stderr(logf);
            prepare(&mut pg, ident);
            let child = pg.spawn().with_context(|| format!("starting {}", bins.postgres.display()))?;
            let mut cluster = Cluster {
                child: Some(child),
                dir: None,
                port,
                url: format!("postgres://mesh:mesh@127.0.0.1:{port}/mesher"),
                log: log.clone(),
            };
            match cluster.wait_ready(Duration::from_secs(60)) {
                Ok(()) => {
                    cluster.dir = Some(dir);
                    cluster.create_database()?;
                    return Ok(cluster);
                }
                Err(e) => {
                    cluster.kill();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("PostgreSQL exited during startup ({status}):\n{}", self.log_tail(40));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // The socket accepts while the server is still starting up; a real query decides.
                if self.psql_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("PostgreSQL did not accept connections within {timeout:?}:\n{}", self.log_tail(40));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One round trip with a short-lived runtime-free check: the startup packet and an auth
    /// answer. We use sqlx on a private current-thread runtime to stay independent of callers.
    fn psql_ok(&self) -> bool {
        let url = format!("postgres://mesh:mesh@127.0.0.1:{}/postgres", self.port);
        run_sync(async move {
            use sqlx::Connection;
            match sqlx::PgConnection::connect(&url).await {
                Ok(c) => {
                    let _ = c.close().await;
                    true
                }
                Err(_) => false,
            }
        })
    }

    fn create_database(&self) -> Result<()> {
        let url = format!("postgres://mesh:mesh@127.0.0.1:{}/postgres", self.port);
        run_sync(async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await?;
            sqlx::query("CREATE DATABASE mesher").execute(&mut c).await?;
            c.close().await?;
            Ok::<_, sqlx::Error>(())
        })
        .context("creating database mesher")
    }

    /// `postgres://mesh:mesh@127.0.0.1:<port>/mesher`
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the postmaster.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The data directory's parent (holds the data, the log and the Unix socket).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT = fast shutdown: disconnect clients, stop, no recovery needed (we discard
            // the data anyway).
            // SAFETY: kill with a PID we own.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        // SAFETY: as above; kill the whole group (backends too).
                        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Stop the server (fast shutdown) and delete its directory.
    pub fn stop(mut self) {
        self.kill();
        self.dir.take();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run a future to completion on a private current-thread runtime, from any thread (also from
/// inside another runtime, by using a scoped thread).
fn run_sync<F: std::future::Future + Send>(fut: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(fut))
            .join()
            .expect("runtime thread")
    })
}

//! Component stdout and stderr, as Spin handles them: appended to
//! `<log dir>/<component>_stdout.txt` and `_stderr.txt` (the log directory
//! defaults to `<state dir>/logs`), and echoed to this process's stderr for
//! the components being followed (all, unless `--follow` names some or
//! `--quiet`). With no log directory, output goes to stderr as it is.
//! Files are opened once per component, not per instance, so logging costs
//! a write, not an open, per message.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::WasiCtxBuilder;

/// Which components' output is echoed to the terminal.
#[derive(Debug, Clone)]
enum Follow {
    All,
    None,
    Named(HashSet<String>),
}

#[derive(Debug, Clone)]
pub struct LogOptions {
    dir: Option<PathBuf>,
    follow: Follow,
}

impl LogOptions {
    /// Creates the log directory (and truncates its logs when asked).
    pub fn new(
        dir: Option<PathBuf>,
        follow: &[String],
        quiet: bool,
        truncate: bool,
    ) -> Result<LogOptions> {
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create log dir {}", dir.display()))?;
            if truncate {
                for entry in std::fs::read_dir(dir)?.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.ends_with("stdout.txt") || name.ends_with("stderr.txt") {
                        let _ = std::fs::File::create(entry.path());
                    }
                }
            }
        }
        let follow = if quiet {
            Follow::None
        } else if follow.is_empty() {
            Follow::All
        } else {
            Follow::Named(follow.iter().cloned().collect())
        };
        Ok(LogOptions { dir, follow })
    }

    /// Output for one component.
    pub fn for_component(&self, id: &str) -> Result<ComponentStdio> {
        let follow = match &self.follow {
            Follow::All => true,
            Follow::None => false,
            Follow::Named(ids) => ids.contains(id),
        };
        let Some(dir) = &self.dir else {
            return Ok(ComponentStdio::Inherit);
        };
        // Spin's file names: the component id, made safe for a file name.
        let safe: String = id
            .chars()
            .map(|c| match c {
                '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' | '\0' => '_',
                c => c,
            })
            .collect();
        let open = |suffix: &str| -> Result<LogFile> {
            let path = dir.join(format!("{safe}_{suffix}.txt"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("Failed to open log file {}", path.display()))?;
            Ok(LogFile {
                file: Arc::new(file),
                follow,
            })
        };
        Ok(ComponentStdio::Files {
            stdout: open("stdout")?,
            stderr: open("stderr")?,
        })
    }
}

#[derive(Clone)]
pub enum ComponentStdio {
    Inherit,
    Files { stdout: LogFile, stderr: LogFile },
}

impl ComponentStdio {
    pub fn attach(&self, wasi: &mut WasiCtxBuilder) {
        match self {
            ComponentStdio::Inherit => {
                wasi.inherit_stdout().inherit_stderr();
            }
            ComponentStdio::Files { stdout, stderr } => {
                wasi.stdout(stdout.clone()).stderr(stderr.clone());
            }
        }
    }
}

/// One log file, shared by every instance of a component.
#[derive(Clone)]
pub struct LogFile {
    file: Arc<std::fs::File>,
    follow: bool,
}

impl IsTerminal for LogFile {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogFile {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogFile {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // An append to a local file: short enough to do in place. Opened
        // with O_APPEND, each write lands whole even with other writers.
        let written = (&*self.file).write(buf)?;
        if self.follow {
            let _ = std::io::stderr().write_all(&buf[..written]);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

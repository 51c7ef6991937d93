//! The key server's admin socket: `DIR/admin.sock`, a Unix socket in the (trusted) server
//! directory through which `keyserver rotate-master` asks a *running* server to rotate its
//! master key, so the server keeps serving while every cluster key is re-wrapped.
//!
//! Only a process of the server's own user is answered (the peer's credentials are checked, the
//! socket is 0600). One request, one response, each a line of JSON. When no server answers on
//! the socket (none runs, or a stale socket of a killed one), [`request`] says so and the
//! caller works on the stopped server's directory itself.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The socket's name in the server directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// The longest admin message read (a provider description is a few hundred bytes).
pub(crate) const MAX_MESSAGE: u64 = 64 * 1024;

/// What an administrator asks a running server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum AdminRequest {
    /// Re-wrap every registered cluster's key under the master key `provider` describes (the
    /// registry's form of a provider configuration; the key already exists) and record it.
    RotateMaster { provider: serde_json::Value },
}

/// The server's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum AdminResponse {
    Rotated {
        old_key_id: String,
        new_key_id: String,
        /// Cluster keys re-wrapped (those already under the new key are skipped).
        clusters: usize,
    },
    Failed {
        message: String,
    },
}

/// The admin socket of the server directory `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(ADMIN_SOCKET)
}

/// Sends `request` to the server serving `dir`. `Ok(None)`: no server answers there.
pub fn request(dir: &Path, request: &AdminRequest) -> Result<Option<AdminResponse>> {
    let path = socket_path(dir);
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(Error::io(format!("admin socket {}", path.display()), e)),
    };
    let what = || format!("admin socket {}", path.display());
    let mut line = serde_json::to_vec(request).map_err(|e| Error::InvalidOption(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| Error::io(what(), e))?;
    let mut answer = String::new();
    BufReader::new(stream.take(MAX_MESSAGE))
        .read_line(&mut answer)
        .map_err(|e| Error::io(what(), e))?;
    serde_json::from_str(answer.trim_end())
        .map(Some)
        .map_err(|e| Error::ServerDir {
            path: dir.to_owned(),
            reason: format!("the running server's admin answer is not readable ({e}): {answer:?}"),
        })
}

/// Binds the admin socket of `dir` for a server about to serve it: a stale socket (its server
/// is gone) is replaced; one a live server answers on is refused, since two servers must not
/// serve one directory.
pub(crate) fn bind(dir: &Path) -> Result<UnixListener> {
    let path = socket_path(dir);
    let what = || format!("admin socket {}", path.display());
    if std::fs::symlink_metadata(&path).is_ok() {
        if UnixStream::connect(&path).is_ok() {
            return Err(Error::ServerDir {
                path: dir.to_owned(),
                reason: "another key server serves it (its admin socket answers)".into(),
            });
        }
        std::fs::remove_file(&path).map_err(|e| Error::io(what(), e))?;
    }
    let listener = UnixListener::bind(&path).map_err(|e| Error::io(what(), e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(what(), e))?;
    listener.set_nonblocking(true).map_err(|e| Error::io(what(), e))?;
    Ok(listener)
}

/// Reads one request from an admin connection (at most [`MAX_MESSAGE`] bytes).
pub(crate) fn read_request(line: &str) -> std::result::Result<AdminRequest, String> {
    serde_json::from_str(line.trim_end()).map_err(|e| format!("admin request not understood: {e}"))
}

/// The wire form of a response: one line.
pub(crate) fn response_line(response: &AdminResponse) -> Vec<u8> {
    let mut line = serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_on_the_directory_is_none_and_a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let req = AdminRequest::RotateMaster {
            provider: serde_json::json!({"kind": "local"}),
        };
        assert!(request(dir.path(), &req).unwrap().is_none());
        // A socket left by a killed server: nobody answers, bind replaces it.
        drop(UnixListener::bind(socket_path(dir.path())).unwrap());
        assert!(request(dir.path(), &req).unwrap().is_none());
        let live = bind(dir.path()).unwrap();
        let mode = std::fs::metadata(socket_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // While it is bound and listening, a second server is refused.
        let err = bind(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another key server serves it"), "{err}");
        drop(live);
    }

    #[test]
    fn requests_and_responses_round_trip_as_lines() {
        let req = AdminRequest::RotateMaster {
            provider: serde_json::json!({"kind": "local", "path": "/k"}),
        };
        let line = String::from_utf8(serde_json::to_vec(&req).unwrap()).unwrap();
        assert!(matches!(
            read_request(&line).unwrap(),
            AdminRequest::RotateMaster { .. }
        ));
        assert!(
            read_request("{\"op\":\"format-disk\"}")
                .unwrap_err()
                .contains("not understood")
        );
        let line = response_line(&AdminResponse::Failed { message: "x".into() });
        assert_eq!(line.last(), Some(&b'\n'));
    }
}

//! PostgreSQL over TLS, against a throwaway cluster of its own: the shared test server has no TLS
//! and must not be reconfigured. The test makes a CA and a server certificate (rcgen), runs
//! `initdb` and `pg_ctl` (as the `postgres` account when run as root, as `scripts/test` does) with
//! `ssl=on`, listens on 127.0.0.1 only and accepts nothing but `hostssl` connections with a
//! SCRAM password, so every connection that succeeds was encrypted (and authenticated the way a
//! production database would ask).
//!
//! Without `initdb` the test is skipped with a notice, except under `CI`, where it fails.

use hookline_store::{PoolOptions, PostgresStore, Store};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The superuser's password: the cluster asks for SCRAM, as a production database would.
const PASSWORD: &str = "tls-test-password";

/// A running cluster that takes only TLS connections; stopped when dropped.
struct TlsCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Run PostgreSQL's tools as `postgres` (it refuses to run as root).
    as_postgres: bool,
    port: u16,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that signed nothing of the server's.
    other_ca: PathBuf,
}

/// `initdb`'s directory: the newest `/usr/lib/postgresql/*/bin`, else `initdb` on the `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(bin) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("initdb"))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

fn skip(why: &str) -> Option<TlsCluster> {
    if std::env::var_os("CI").is_some() {
        panic!("{why}: CI must run the PostgreSQL TLS test (.ci/run installs PostgreSQL)");
    }
    eprintln!("note: {why}; skipping the PostgreSQL TLS test");
    None
}

fn id(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsCluster {
    fn start() -> Option<TlsCluster> {
        let Some(bin) = postgres_bin() else {
            return skip("initdb not found");
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = std::fs::metadata(dir.path()).unwrap().uid() == 0;
        let owner = if as_postgres {
            match (id("-u"), id("-g")) {
                (Some(u), Some(g)) => Some((u, g)),
                _ => return skip("running as root and there is no postgres account"),
            }
        } else {
            None
        };
        let give = |p: &Path| {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        };
        give(dir.path());

        let (ca_pem, server_cert, server_key) = certificates("Hookline PostgreSQL Test CA");
        let (other_ca_pem, _, _) = certificates("Someone Else's CA");
        let ca = dir.path().join("ca.pem");
        let other_ca = dir.path().join("other-ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        std::fs::write(&other_ca, other_ca_pem).unwrap();
        let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::write(&cert_file, server_cert).unwrap();
        std::fs::write(&key_file, server_key).unwrap();
        // PostgreSQL refuses a key file others can read, or one it doesn't own.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        give(&cert_file);
        give(&key_file);

        let cluster = TlsCluster {
            port: free_port(),
            dir,
            bin,
            as_postgres,
            ca,
            other_ca,
        };
        let data = cluster.dir.path().join("data");
        let pwfile = cluster.dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        give(&pwfile);
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "-A".as_ref(),
                "scram-sha-256".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        // TLS or nothing, from 127.0.0.1 only (pg_ctl needs no connection to see it started).
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cluster.port,
            cluster.dir.path().display(),
            cert_file.display(),
            key_file.display()
        );
        let log = cluster.dir.path().join("log");
        cluster.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        );
        Some(cluster)
    }

    /// Runs one of PostgreSQL's tools (as `postgres` when we are root); panics with its output
    /// and the server log when it fails.
    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let program = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("can't run {}: {e}", program.display()));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            panic!(
                "{tool} failed: {}{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{host}:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let program = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A fresh CA named `ca_name` (PEM) and a server certificate it signed for the address 127.0.0.1
/// only (PEM certificate, PEM PKCS#8 key). No `localhost` on it: that name is the host-name check's
/// test.
fn certificates(ca_name: &str) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "hookline-test-postgres");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &*ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Generous connect timeout: TLS handshakes in a debug build on a busy machine are slow, and the
/// test is about what succeeds, not how fast.
fn options() -> PoolOptions {
    PoolOptions {
        connect_timeout: Duration::from_secs(30),
        ..PoolOptions::new(2)
    }
}

async fn connect(url: &str) -> Result<PostgresStore, String> {
    PostgresStore::connect_with(url, options())
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn tls_connections_check_the_server_certificate_as_sslmode_says() {
    let Some(pg) = TlsCluster::start() else {
        return;
    };
    let ca = format!("sslrootcert={}", pg.ca.display());
    let other_ca = format!("sslrootcert={}", pg.other_ca.display());

    // verify-full with the CA that signed the server's certificate: connects, migrates, and the
    // LISTEN connection (TLS too) subscribes.
    let store = connect(&pg.url("127.0.0.1", &format!("sslmode=verify-full&{ca}")))
        .await
        .expect("verify-full with the right CA connects");
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    let subscribed = store.wakeups().expect("PostgreSQL wakes other nodes");
    // A guard against hanging forever, not a timing assertion: LISTEN wakes once subscribed.
    tokio::time::timeout(Duration::from_secs(120), subscribed.notified())
        .await
        .expect("the LISTEN connection subscribes over TLS");

    // verify-full with another CA: refused, saying why and with which settings.
    let err = connect(&pg.url("127.0.0.1", &format!("sslmode=verify-full&{other_ca}")))
        .await
        .err()
        .expect("a certificate from an unknown CA is refused");
    assert!(
        err.contains("UnknownIssuer") && err.contains("sslmode=verify-full"),
        "{err}"
    );

    // The certificate names 127.0.0.1, not localhost: verify-full refuses the name, verify-ca
    // checks only the chain and connects.
    let err = connect(&pg.url("localhost", &format!("sslmode=verify-full&{ca}")))
        .await
        .err()
        .expect("a certificate for another name is refused by verify-full");
    assert!(err.contains("not valid for name \"localhost\""), "{err}");
    connect(&pg.url("localhost", &format!("sslmode=verify-ca&{ca}")))
        .await
        .expect("verify-ca ignores the host name");
    let err = connect(&pg.url("localhost", &format!("sslmode=verify-ca&{other_ca}")))
        .await
        .err()
        .expect("verify-ca still checks the chain");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // require: encrypted, certificate unchecked (libpq's meaning) ...
    connect(&pg.url("localhost", "sslmode=require"))
        .await
        .expect("require connects without a CA");
    // ... unless a CA is named, when it checks the chain as verify-ca does (libpq again).
    let err = connect(&pg.url("127.0.0.1", &format!("sslmode=require&{other_ca}")))
        .await
        .err()
        .expect("require with a CA checks the chain");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // No sslmode means prefer: the server takes only TLS, so connecting proves it was used.
    connect(&format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
        pg.port
    ))
    .await
    .expect("prefer uses TLS when the server offers it");

    // disable: plaintext, which this server's pg_hba.conf refuses.
    let err = connect(&pg.url("127.0.0.1", "sslmode=disable"))
        .await
        .err()
        .expect("a plaintext connection is refused by a hostssl-only server");
    assert!(err.contains("no encryption"), "{err}");
}

//! A throwaway PostgreSQL server for one test (Debian's packages): a fresh
//! cluster in a temp dir, owned by the `postgres` user, listening on a free
//! loopback port, stopped and removed when the guard drops.

use std::path::PathBuf;
use std::process::Command;

pub struct Postgres {
    dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    let root = std::path::Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("PostgreSQL server (Debian package postgresql) is needed")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("initdb")
}

fn as_postgres(program: PathBuf, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&program)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Enables OpenBao's database engine on `bao` with a connection `pg` to
/// this server and a role `app` whose credentials live `default_ttl` (e.g.
/// `"default_ttl=5s"`) up to `max_ttl`.
pub fn database_engine(bao: &super::openbao::OpenBao, pg: &Postgres, default_ttl: &str, max_ttl: &str) {
    bao.bao(&["secrets", "enable", "database"]);
    bao.bao(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        "allowed_roles=app",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port
        ),
        "username=vault",
        "password=vaultpw",
    ]);
    bao.bao(&[
        "write",
        "database/roles/app",
        "db_name=pg",
        "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        default_ttl,
        max_ttl,
    ]);
}

impl Postgres {
    /// Starts a server whose superuser `vault` has password `vaultpw`.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = PathBuf::from(format!(
            "/tmp/vinit-pg-{}-{}",
            std::process::id(),
            super::openbao::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .unwrap();
        let data = dir.join("data");
        as_postgres(
            bin.join("initdb"),
            &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust"],
        );
        let port = super::openbao::free_port();
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", dir.display());
        as_postgres(
            bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                dir.join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        let server = Postgres { dir, port, bin };
        server.sql(
            "postgres",
            "CREATE ROLE vault WITH SUPERUSER LOGIN PASSWORD 'vaultpw'",
        );
        // Password logins over TCP for everyone (Vault and the issued roles).
        let hba = server.dir.join("data/pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        server.sql("postgres", "SELECT pg_reload_conf()");
        server
    }

    /// Runs SQL as `user` over the local socket (trust); returns the output.
    pub fn sql(&self, user: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args([
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
            ])
            .args(["-tAc", sql])
            .output()
            .expect("psql");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Logs in over TCP with a password, as an app would; returns `current_user`.
    pub fn login(&self, user: &str, password: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
            ])
            .args(["-tAc", "SELECT current_user"])
            .env("PGPASSWORD", password)
            .output()
            .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

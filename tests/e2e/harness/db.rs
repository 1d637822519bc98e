//! A database of the test's own: a SQLite file in a temporary folder, or a fresh database on
//! the test PostgreSQL server, dropped afterwards.

use wasmswitch::store::Store;

/// The database a [`super::Switch`] runs on; the switch owns it and drops it when it stops.
#[derive(Debug)]
pub struct Db {
    /// What the switch is given as `DATABASE_URL`.
    pub url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The file lives (and goes) with the folder.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// `name` on the server at `admin` (the URL of its maintenance database).
    Postgres { admin: String, name: String },
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::Builder::new()
            .prefix("wasmswitch-e2e-db-")
            .tempdir()
            .expect("tempdir");
        Db {
            url: format!("sqlite://{}/wasmswitch.db", dir.path().display()),
            kind: Kind::Sqlite(dir),
        }
    }

    /// A fresh database on the server `WASMSWITCH_TEST_POSTGRES_URL` names; none when it is
    /// unset or empty (except in CI, where skipping half the runs must fail instead). A server
    /// that is named but unreachable fails the test: a typo must not pass as a skip.
    pub async fn postgres() -> Option<Db> {
        let Some(admin) = std::env::var("WASMSWITCH_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but WASMSWITCH_TEST_POSTGRES_URL is not: the PostgreSQL half would be skipped"
            );
            return None;
        };
        let name = super::unique("wasmswitch_e2e");
        let store = Store::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin}: {e}"));
        store
            .execute_raw(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        store.close().await;
        // The same server and credentials, the new database's name in place of the path.
        let url = match admin.rfind('/') {
            Some(i) if i > "postgres://".len() => format!("{}/{name}", &admin[..i]),
            _ => format!("{admin}/{name}"),
        };
        Some(Db {
            url,
            kind: Kind::Postgres { admin, name },
        })
    }

    /// Removes the database (the switch using it must have stopped). Best effort: a database
    /// left behind is named `wasmswitch_e2e_*` and harms nothing.
    pub async fn remove(self) {
        if let Kind::Postgres { admin, name } = &self.kind
            && let Ok(store) = Store::connect(admin).await
        {
            let _ = store
                .execute_raw(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            store.close().await;
        }
    }

    /// [`Db::remove`] from outside any runtime (a `Drop`), on a thread of its own.
    pub fn remove_blocking(self) {
        if matches!(self.kind, Kind::Sqlite(_)) {
            return;
        }
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(self.remove());
            }
        })
        .join();
    }
}

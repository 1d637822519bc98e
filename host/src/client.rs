//! `wasmswitch plugin push|list|activate|rollback|deactivate`: the API from the command line, so a plugin
//! author goes from source to a live plugin in two commands (build, push).

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the API is and who is calling.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The API's base URL.
    #[arg(long, env = "WASMSWITCH_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key (wsk_...) or a bearer token.
    #[arg(long, env = "WASMSWITCH_KEY", hide_env_values = true)]
    pub key: String,
    /// The tenant. Default: the tenant of the key.
    #[arg(long, env = "WASMSWITCH_TENANT")]
    pub tenant: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    tenant: String,
}

impl Client {
    pub async fn connect(remote: &Remote) -> anyhow::Result<Client> {
        let http = reqwest::Client::new();
        let base = remote.url.trim_end_matches('/').to_string();
        let mut client = Client {
            http,
            base,
            key: remote.key.clone(),
            tenant: String::new(),
        };
        client.tenant = match &remote.tenant {
            Some(t) => t.clone(),
            None => {
                let me = client
                    .send(client.http.get(client.url("/v1/whoami")))
                    .await?;
                match me["tenant"].as_str() {
                    Some(t) => t.to_string(),
                    None => bail!("this key is an operator key: say which tenant with --tenant"),
                }
            }
        };
        Ok(client)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn plugins(&self, rest: &str) -> String {
        self.url(&format!("/v1/tenants/{}/plugins{rest}", self.tenant))
    }

    /// Sends a request with the key and returns the JSON answer, or the problem as an error.
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the wasmswitch API at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let kind = body["type"]
            .as_str()
            .and_then(|t| t.rsplit(':').next())
            .unwrap_or("error");
        let detail = body["detail"]
            .as_str()
            .map_or(body.to_string(), str::to_string);
        bail!("{} {kind}: {detail}", status.as_u16())
    }

    pub async fn push(
        &self,
        file: &Path,
        name: &str,
        world: Option<&str>,
        activate: bool,
    ) -> anyhow::Result<()> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut query = vec![];
        if let Some(w) = world {
            if !w.bytes().all(|b| b.is_ascii_lowercase()) {
                bail!("--world must be router, ivr, messaging or switch");
            }
            query.push(format!("world={w}"));
        }
        if activate {
            query.push("activate=true".to_string());
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        let req = self
            .http
            .post(self.plugins(&format!("/{name}{query}")))
            .header("content-type", "application/wasm")
            .body(bytes);
        let r = self.send(req).await?;
        println!(
            "uploaded {}/{}@{} (world {}, contract {}, {} bytes, sha256 {}){}",
            self.tenant,
            name,
            r["version"],
            r["world"].as_str().unwrap_or("?"),
            r["contract"].as_str().unwrap_or("?"),
            r["size"],
            r["sha256"].as_str().unwrap_or("?"),
            if activate {
                ", active for new calls now"
            } else {
                "; activate it with: wasmswitch plugin activate NAME VERSION"
            }
        );
        Ok(())
    }

    pub async fn list(&self, name: Option<&str>) -> anyhow::Result<()> {
        let url = match name {
            Some(n) => self.plugins(&format!("/{n}")),
            None => self.plugins(""),
        };
        let r = self.send(self.http.get(url)).await?;
        let rows = r.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            println!("tenant {} has no plugins", self.tenant);
            return Ok(());
        }
        println!(
            "{:<20} {:>7}  {:<6}  {:<10} {:<8} {:>10}  SHA256",
            "NAME", "VERSION", "ACTIVE", "WORLD", "CONTRACT", "BYTES"
        );
        for p in rows {
            println!(
                "{:<20} {:>7}  {:<6}  {:<10} {:<8} {:>10}  {}",
                p["name"].as_str().unwrap_or("?"),
                p["version"],
                if p["active"].as_bool() == Some(true) {
                    "yes"
                } else {
                    ""
                },
                p["world"].as_str().unwrap_or("?"),
                p["contract"].as_str().unwrap_or("?"),
                p["size"],
                p["sha256"].as_str().map_or("?", |s| &s[..s.len().min(12)]),
            );
        }
        Ok(())
    }

    pub async fn activate(&self, name: &str, version: u32) -> anyhow::Result<()> {
        let url = self.plugins(&format!("/{name}/versions/{version}/activate"));
        let r = self.send(self.http.post(url)).await?;
        println!(
            "{}/{name}@{} is active for new calls (was {})",
            self.tenant,
            r["version"],
            r["previous"]
                .as_i64()
                .map_or("none".into(), |v| v.to_string())
        );
        Ok(())
    }

    pub async fn deactivate(&self, name: &str) -> anyhow::Result<()> {
        let r = self
            .send(self.http.post(self.plugins(&format!("/{name}/deactivate"))))
            .await?;
        println!(
            "{}/{name} deactivated (was version {}); new calls no longer reach it",
            self.tenant, r["version"]
        );
        Ok(())
    }

    pub async fn rollback(&self, name: &str) -> anyhow::Result<()> {
        let r = self
            .send(self.http.post(self.plugins(&format!("/{name}/rollback"))))
            .await?;
        println!(
            "{}/{name} rolled back to version {} (from {})",
            self.tenant,
            r["version"],
            r["previous"]
                .as_i64()
                .map_or("none".into(), |v| v.to_string())
        );
        Ok(())
    }
}

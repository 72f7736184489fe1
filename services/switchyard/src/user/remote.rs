//! `switchyard user …` through a running cluster's admin API (`--admin-url`): each
//! action is one or a few requests; every answer but 2xx is an error carrying the
//! server's reason. JSON answers are printed as they come, pretty-printed.

use super::{account, read_password, Action};
use crate::admin_client::{request, segment};
use crate::config::Config;
use serde_json::{json, Value};

/// Pages of the session listing read at most, so a cursor that never ends cannot keep
/// the CLI reading (1,000 sessions a page: ten million sessions).
const MAX_PAGES: usize = 10_000;

/// A running cluster's admin API.
pub(super) struct Api<'a> {
    url: &'a str,
    token: &'a str,
}

impl<'a> Api<'a> {
    pub(super) fn new(url: &'a str, token: &'a str) -> Self {
        Self { url, token }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<String> {
        let (status, text) = request(self.url, method, path, self.token, body.as_ref()).await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "admin API answered {status}: {text}"
        );
        Ok(text)
    }

    /// Calls, then prints the JSON answer (pretty) or nothing for an empty one.
    async fn show(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<()> {
        let text = self.call(method, path, body).await?;
        if !text.is_empty() {
            let value: Value = serde_json::from_str(&text)?;
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Ok(())
    }
}

/// `/api/v1/users/{jid}` plus `rest`.
fn user_path(jid: &switchyard_core::Jid, rest: &str) -> String {
    format!("/api/v1/users/{}{rest}", segment(&jid.to_string()))
}

pub(super) async fn run(config: &Config, action: Action, api: &Api<'_>) -> anyhow::Result<()> {
    match action {
        Action::Add { jid, password } => {
            let jid = account(config, &jid)?;
            let password = read_password(config, password, &jid)?;
            let body = json!({ "jid": jid.to_string(), "password": password });
            api.call("POST", "/api/v1/users", Some(body)).await?;
            println!("added {jid}");
        }
        Action::Remove { jid } => {
            let jid = account(config, &jid)?;
            api.call("DELETE", &user_path(&jid, ""), None).await?;
            println!("removed {jid}");
        }
        Action::Passwd { jid, password } => {
            let jid = account(config, &jid)?;
            let body = json!({ "password": read_password(config, password, &jid)? });
            api.call("PUT", &user_path(&jid, "/password"), Some(body))
                .await?;
            println!("password changed for {jid}");
        }
        Action::List => {
            let jids: Vec<String> =
                serde_json::from_str(&api.call("GET", "/api/v1/users", None).await?)?;
            for jid in jids {
                println!("{jid}");
            }
        }
        Action::Show { jid } => {
            let jid = account(config, &jid)?;
            api.show("GET", &user_path(&jid, ""), None).await?;
        }
        Action::Sessions { jid } => {
            let jid = account(config, &jid)?;
            api.show("GET", &user_path(&jid, "/sessions"), None).await?;
        }
        Action::Kick { jid } if jid.contains('/') => {
            api.call(
                "DELETE",
                &format!("/api/v1/sessions/{}", segment(&jid)),
                None,
            )
            .await?;
            println!("kicked {jid}");
        }
        Action::Kick { jid } => {
            let jid = account(config, &jid)?;
            api.show("DELETE", &user_path(&jid, "/sessions"), None)
                .await?;
        }
        Action::Ban { jid, reason } => {
            let jid = account(config, &jid)?;
            let body = json!({ "reason": reason });
            api.show("PUT", &user_path(&jid, "/ban"), Some(body))
                .await?;
            println!("banned {jid}");
        }
        Action::Unban { jid } => {
            let jid = account(config, &jid)?;
            api.call("DELETE", &user_path(&jid, "/ban"), None).await?;
            println!("unbanned {jid}");
        }
        Action::Roster { jid } => {
            let jid = account(config, &jid)?;
            api.show("GET", &user_path(&jid, "/roster"), None).await?;
        }
        Action::RosterAdd {
            jid,
            contact,
            name,
            groups,
            subscription,
        } => {
            let jid = account(config, &jid)?;
            let path = user_path(&jid, &format!("/roster/{}", segment(&contact)));
            let body = json!({ "name": name, "groups": groups, "subscription": subscription });
            api.call("PUT", &path, Some(body)).await?;
            println!("{contact} is on the roster of {jid}");
        }
        Action::RosterRemove { jid, contact } => {
            let jid = account(config, &jid)?;
            let path = user_path(&jid, &format!("/roster/{}", segment(&contact)));
            api.call("DELETE", &path, None).await?;
            println!("{contact} removed from the roster of {jid}");
        }
        Action::Offline { jid, purge } => {
            let jid = account(config, &jid)?;
            let method = if purge { "DELETE" } else { "GET" };
            api.show(method, &user_path(&jid, "/offline"), None).await?;
        }
        Action::Message { jid, body, subject } => {
            let body = json!({ "to": jid, "body": body, "subject": subject });
            api.call("POST", "/api/v1/messages", Some(body)).await?;
            println!("sent to {jid}");
        }
        Action::Online { domain } => online(api, domain.as_deref()).await?,
        Action::Announce {
            domain,
            body,
            subject,
        } => {
            let body = json!({ "domain": domain, "body": body, "subject": subject });
            api.show("POST", "/api/v1/announcements", Some(body))
                .await?;
        }
    }
    Ok(())
}

/// Every page of the cluster-wide listing: one line per session, `JID EDGE`.
async fn online(api: &Api<'_>, domain: Option<&str>) -> anyhow::Result<()> {
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut path = "/api/v1/sessions?limit=1000".to_owned();
        if let Some(domain) = domain {
            path.push_str(&format!("&domain={}", segment(domain)));
        }
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", segment(cursor)));
        }
        let page: Value = serde_json::from_str(&api.call("GET", &path, None).await?)?;
        for s in page["sessions"].as_array().into_iter().flatten() {
            println!(
                "{} {}",
                s["jid"].as_str().unwrap_or_default(),
                s["edge"].as_str().unwrap_or_default()
            );
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(()),
        }
    }
    anyhow::bail!("the listing did not end after {MAX_PAGES} pages")
}

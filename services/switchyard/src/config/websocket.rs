//! The WebSocket listener's keys (`listen.websocket*`): checks and the edge's policy.

use super::Listen;
use switchyard_edge::WebSocketPolicy;

impl Listen {
    /// Origins are what browsers send (`scheme://host[:port]`, no path); the public URL
    /// is a WebSocket URL.
    pub(super) fn validate_websocket(&self) -> anyhow::Result<()> {
        for origin in &self.websocket_origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            anyhow::ensure!(
                rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', ' '])),
                "listen.websocket_origins: {origin:?} is not an origin (scheme://host[:port], no path)"
            );
        }
        let url = &self.websocket_url;
        anyhow::ensure!(
            url.is_empty() || url.starts_with("wss://") || url.starts_with("ws://"),
            "listen.websocket_url: {url:?} is not a ws:// or wss:// URL"
        );
        Ok(())
    }

    pub(crate) fn websocket_policy(&self) -> WebSocketPolicy {
        WebSocketPolicy {
            origins: self.websocket_origins.clone(),
            public_url: Some(self.websocket_url.clone()).filter(|u| !u.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn with(edit: impl FnOnce(&mut Config)) -> anyhow::Result<()> {
        let mut config = Config::default();
        edit(&mut config);
        config.validate()
    }

    #[test]
    fn origins_and_the_public_url_are_checked() {
        assert!(
            with(|c| c.listen.websocket_origins = vec!["https://chat.example.org:8443".into()])
                .is_ok()
        );
        for bad in [
            "chat.example.org",
            "https://chat.example.org/app",
            "https://",
            "*",
        ] {
            let err = with(|c| c.listen.websocket_origins = vec![bad.into()]).unwrap_err();
            assert!(
                format!("{err}").contains("listen.websocket_origins"),
                "{bad}: {err}"
            );
        }
        assert!(
            with(|c| c.listen.websocket_url = "wss://xmpp.example.org/xmpp-websocket".into())
                .is_ok()
        );
        let err = with(|c| c.listen.websocket_url = "https://x".into()).unwrap_err();
        assert!(format!("{err}").contains("listen.websocket_url"), "{err}");
        let err = with(|c| c.listen.websocket = "5443".into()).unwrap_err();
        assert!(format!("{err}").contains("not an address:port"), "{err}");
    }
}

//! XEP-0114 external components (`[[components]]`): each a domain and its shared secret.

use super::{mask, Config};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchyard_core::component::ComponentConfig;

/// The shortest secret accepted: it is all that stands between the component port and
/// anyone who reaches it.
const MIN_SECRET_CHARS: usize = 16;

#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentEntry {
    /// The component's domain (`push.example.org`): every JID at it is the component's.
    pub domain: String,
    /// The shared secret of its handshake (XEP-0114 §3.2).
    pub secret: String,
}

impl std::fmt::Debug for ComponentEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentEntry")
            .field("domain", &self.domain)
            .field("secret", &mask(&self.secret))
            .finish()
    }
}

impl Config {
    /// Domains are plain, distinct and not served ones; secrets long enough; a listener
    /// to connect to.
    pub(super) fn validate_components(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for c in &self.components {
            let jid = switchyard_core::Jid::parse(&c.domain).ok();
            anyhow::ensure!(
                jid.is_some_and(|j| j.local().is_none() && j.is_bare()) && !c.domain.is_empty(),
                "components: {:?} is not a domain",
                c.domain
            );
            anyhow::ensure!(
                !self.domains.contains(&c.domain),
                "components: {} is a served domain (`domains`), not a component's",
                c.domain
            );
            anyhow::ensure!(
                seen.insert(c.domain.as_str()),
                "components: {} is listed twice",
                c.domain
            );
            anyhow::ensure!(
                c.secret.chars().count() >= MIN_SECRET_CHARS,
                "components: the secret of {} must be at least {MIN_SECRET_CHARS} characters",
                c.domain
            );
        }
        anyhow::ensure!(
            self.components.is_empty() || !self.listen.component.is_empty(),
            "components are configured but listen.component is empty"
        );
        Ok(())
    }

    /// What the edge's component listener accepts.
    pub(crate) fn component_config(&self) -> Arc<ComponentConfig> {
        Arc::new(ComponentConfig {
            secrets: self
                .components
                .iter()
                .map(|c| (c.domain.clone(), c.secret.clone()))
                .collect(),
            limits: self.core_limits(),
        })
    }

    /// The component domains, for routing.
    pub(crate) fn component_domains(&self) -> Vec<String> {
        self.components.iter().map(|c| c.domain.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(components: Vec<ComponentEntry>) -> anyhow::Result<()> {
        Config {
            components,
            ..Config::default()
        }
        .validate()
    }

    fn entry(domain: &str, secret: &str) -> ComponentEntry {
        ComponentEntry {
            domain: domain.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn components_are_checked_and_their_secrets_never_shown() {
        let good = entry("push.localhost", "a-long-enough-secret");
        assert!(with(vec![good.clone()]).is_ok());
        for (bad, says) in [
            (
                vec![entry("user@push.localhost", "a-long-enough-secret")],
                "not a domain",
            ),
            (
                vec![entry("localhost", "a-long-enough-secret")],
                "served domain",
            ),
            (vec![entry("push.localhost", "short")], "at least 16"),
            (vec![good.clone(), good.clone()], "listed twice"),
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
        let config = Config {
            components: vec![good],
            ..Config::default()
        };
        let shown = format!(
            "{:?} {}",
            config.redacted().components,
            toml::to_string(&config.redacted()).unwrap()
        );
        assert!(!shown.contains("a-long-enough-secret"), "{shown}");
    }
}

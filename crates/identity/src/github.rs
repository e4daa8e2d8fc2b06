//! GitHub sign-in (`idp_provider: github`): plain OAuth2 (GitHub is not an
//! OpenID provider) plus its REST API for the user, the verified primary
//! email and the organizations (which become the user's groups).
//!
//! `idp_provider_url` points at GitHub Enterprise Server
//! (`https://github.example.com`, API under `/api/v3`); default github.com.

use std::time::Duration;

use serde::Deserialize;

use crate::oidc::Tokens;
use crate::session::Identity;

#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// Web base, e.g. `https://github.com`.
    pub web: String,
    /// API base, e.g. `https://api.github.com`.
    pub api: String,
    pub client_id: String,
    pub client_secret: String,
    /// Default `user:email read:org`.
    pub scopes: Vec<String>,
}

impl GitHubSettings {
    /// github.com, or GitHub Enterprise at `url`.
    pub fn new(
        url: Option<&str>,
        client_id: String,
        client_secret: String,
        scopes: Vec<String>,
    ) -> GitHubSettings {
        let (web, api) = match url.map(|u| u.trim_end_matches('/')) {
            None | Some("https://github.com") => (
                "https://github.com".to_string(),
                "https://api.github.com".to_string(),
            ),
            Some(u) => (u.to_string(), format!("{u}/api/v3")),
        };
        GitHubSettings {
            web,
            api,
            client_id,
            client_secret,
            scopes,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitHubError {
    #[error("GitHub refused the sign-in: {0}")]
    Exchange(String),
    #[error("GitHub's API failed: {0}")]
    Api(String),
}

pub struct GitHub {
    settings: GitHubSettings,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

impl GitHub {
    pub fn new(settings: GitHubSettings) -> Result<GitHub, GitHubError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitHubError::Api(e.to_string()))?;
        Ok(GitHub { settings, http })
    }

    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/login/oauth/authorize", self.settings.web))
            .unwrap_or_else(|_| {
                url::Url::parse("https://github.com/login/oauth/authorize").expect("static URL")
            });
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("allow_signup", "false");
        url.into()
    }

    pub async fn exchange(
        &self,
        redirect_uri: &str,
        code: &str,
    ) -> Result<(Identity, Tokens), GitHubError> {
        // Built in its own statement: the serializer is not `Send` across an await.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("client_secret", &self.settings.client_secret)
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .finish();
        let resp = self
            .http
            .post(format!("{}/login/oauth/access_token", self.settings.web))
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| GitHubError::Exchange(e.to_string()))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| GitHubError::Exchange(e.to_string()))?;
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GitHubError::Exchange(e.to_string()))?;
        let Some(access_token) = token.access_token else {
            let why = format!(
                "{} {}",
                token.error.unwrap_or_default(),
                token.error_description.unwrap_or_default()
            );
            return Err(GitHubError::Exchange(why.trim().to_string()));
        };
        let user: User = self.api(&access_token, "/user").await?;
        let email = match user.email.clone() {
            Some(e) if !e.is_empty() => e,
            _ => {
                let emails: Vec<Email> = self.api(&access_token, "/user/emails").await?;
                emails
                    .into_iter()
                    .find(|e| e.primary && e.verified)
                    .map(|e| e.email)
                    .unwrap_or_default()
            }
        };
        let orgs: Vec<Org> = self.api(&access_token, "/user/orgs").await?;
        let mut claims = serde_json::Map::new();
        claims.insert(
            "preferred_username".into(),
            serde_json::Value::String(user.login.clone()),
        );
        let identity = Identity {
            sub: user.id.to_string(),
            name: user
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| user.login.clone()),
            email,
            groups: orgs.into_iter().map(|o| o.login).collect(),
            idp: "github".into(),
            claims,
        };
        let tokens = Tokens {
            access_token,
            ..Tokens::default()
        };
        Ok((identity, tokens))
    }

    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> Result<T, GitHubError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.settings.api))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| GitHubError::Api(format!("{path}: {e}")))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| GitHubError::Api(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| GitHubError::Api(format!("{path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enterprise_urls() {
        let s = GitHubSettings::new(None, "id".into(), "s".into(), vec![]);
        assert_eq!(
            (s.web.as_str(), s.api.as_str()),
            ("https://github.com", "https://api.github.com")
        );
        let s = GitHubSettings::new(
            Some("https://ghe.example.com/"),
            "id".into(),
            "s".into(),
            vec![],
        );
        assert_eq!(s.api, "https://ghe.example.com/api/v3");
    }
}

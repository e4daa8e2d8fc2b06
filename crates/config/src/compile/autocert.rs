//! `autocert`: certificates from an ACME CA, with Pomerium's keys.

use std::path::PathBuf;

use super::Compiler;
use crate::compiled::{Autocert, HostPattern, Route, SignIn};
use crate::model::Options;

const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

impl Compiler<'_> {
    pub(super) fn autocert(
        &mut self,
        opts: &Options,
        routes: &[Route],
        sign_in: &SignIn,
        insecure_server: bool,
    ) -> Option<Autocert> {
        if opts.autocert != Some(true) {
            return None;
        }
        let mark = self.file_mark.clone();
        if insecure_server {
            self.error(
                &mark,
                "autocert needs a TLS listener: it cannot be used with insecure_server",
            );
            return None;
        }
        let directory_url = match (&opts.autocert_ca, opts.autocert_use_staging) {
            (Some(ca), _) if !ca.value.trim().is_empty() => {
                match url::Url::parse(ca.value.trim()) {
                    Ok(u)
                        if u.scheme() == "https"
                            && u.username().is_empty()
                            && u.password().is_none() =>
                    {
                        ca.value.trim().to_string()
                    }
                    _ => {
                        self.error(
                            &ca.mark,
                            "autocert_ca must be the https URL of an ACME directory",
                        );
                        return None;
                    }
                }
            }
            (_, Some(true)) => LETS_ENCRYPT_STAGING.to_string(),
            _ => LETS_ENCRYPT.to_string(),
        };
        let dir = match &opts.autocert_dir {
            Some(d) if !d.value.trim().is_empty() => self.resolve(d.value.trim()),
            _ => default_dir(),
        };
        let eab = match (&opts.autocert_eab_key_id, &opts.autocert_eab_mac_key) {
            (None, None) => None,
            (Some(id), Some(key)) if !id.value.is_empty() && !key.value.is_empty() => {
                use base64::Engine;
                let text = key.value.trim();
                let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text.trim_end_matches('='))
                    .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text));
                match decoded {
                    Ok(k) if !k.is_empty() => Some((id.value.clone(), k)),
                    _ => {
                        // The key itself is never echoed.
                        self.error(&key.mark, "autocert_eab_mac_key must be base64url");
                        None
                    }
                }
            }
            (Some(s), _) | (_, Some(s)) => {
                self.error(
                    &s.mark,
                    "autocert_eab_key_id and autocert_eab_mac_key go together",
                );
                None
            }
        };
        let trusted_ca = self
            .pem_or_file(
                &opts.autocert_trusted_ca,
                &opts.autocert_trusted_ca_file,
                "autocert_trusted_ca",
            )
            .and_then(|(pem, mark)| self.certs(&pem, &mark, "autocert_trusted_ca"))
            .unwrap_or_default();
        // Every host served, unless a configured certificate covers it.
        let mut hosts: Vec<String> = Vec::new();
        let mut wildcards = Vec::new();
        for r in routes {
            match &r.from.host {
                HostPattern::Exact(h) => hosts.push(h.clone()),
                HostPattern::Wildcard(suffix) => wildcards.push(format!("*{suffix}")),
            }
        }
        if let Some(a) = &sign_in.authenticate {
            hosts.push(a.host.clone());
        }
        // (Hosts a configured certificate covers are left out when the
        // certificates are loaded: see the proxy's ACME manager.)
        hosts.retain(|h| h.parse::<std::net::IpAddr>().is_err());
        hosts.sort();
        hosts.dedup();
        for w in wildcards {
            self.warn(
                &mark,
                format!("autocert: no certificate is obtained for `{w}` (a wildcard needs a DNS challenge); give it one in `certificates`"),
            );
        }
        // TLS-ALPN-01 validators present no client certificate.
        let rejects_clients = opts
            .downstream_mtls
            .as_ref()
            .and_then(|m| m.value.enforcement.as_ref())
            .is_some_and(|e| e.value.to_ascii_lowercase().contains("reject_connection"));
        if rejects_clients && opts.http_redirect_addr.is_none() {
            self.warn(
                &mark,
                "autocert with downstream_mtls.enforcement: reject_connection needs http_redirect_addr (HTTP-01): the CA's TLS-ALPN-01 check brings no client certificate",
            );
        }
        Some(Autocert {
            dir,
            directory_url,
            email: opts
                .autocert_email
                .as_ref()
                .map(|e| e.value.trim().to_string())
                .filter(|e| !e.is_empty()),
            eab,
            trusted_ca,
            hosts,
            http01: opts.http_redirect_addr.is_some(),
        })
    }
}

/// Where certificates are kept when `autocert_dir` is not set:
/// `$XDG_DATA_HOME/gatehouse/autocert`, else
/// `~/.local/share/gatehouse/autocert`, else `/data/autocert` (as
/// Pomerium's image).
fn default_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("gatehouse/autocert");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/gatehouse/autocert");
    }
    PathBuf::from("/data/autocert")
}

//! TLS material: PEM values and files, the server's certificates, and a
//! route's upstream TLS (custom CA, client certificate).

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::Compiler;
use crate::compiled::{
    Certificate, ClientCertRules, Enforcement, MetricsTls, Route, SanKind, SanMatcher, UpstreamTls,
};
use crate::de::Spanned;
use crate::model::{DownstreamMtlsOptions, Options, RouteOptions};
use crate::yaml::{Mark, Value};

impl Compiler<'_> {
    /// A PEM value given inline, as base64 of PEM, or (for `certificates`) as a file path.
    fn pem_value(&mut self, v: &Spanned<String>, what: &str, may_be_file: bool) -> Option<Vec<u8>> {
        let text = v.value.trim();
        if text.contains("-----BEGIN") {
            return Some(text.as_bytes().to_vec());
        }
        if may_be_file && !text.is_empty() && self.resolve(text).is_file() {
            return self.read_file(v, what);
        }
        let compact: String = text.split_whitespace().collect();
        match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) if bytes.starts_with(b"-----BEGIN") || bytes.first() == Some(&0x30) => {
                Some(bytes)
            }
            _ => {
                let hint = if may_be_file { "a readable file, " } else { "" };
                self.error(
                    &v.mark,
                    format!("{what} must be {hint}PEM or base64-encoded PEM"),
                );
                None
            }
        }
    }

    pub(super) fn certs(
        &mut self,
        pem: &[u8],
        mark: &Mark,
        what: &str,
    ) -> Option<Vec<CertificateDer<'static>>> {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
        match certs {
            Ok(c) if !c.is_empty() => Some(c),
            Ok(_) => {
                self.error(mark, format!("{what}: no PEM certificate found"));
                None
            }
            Err(e) => {
                self.error(mark, format!("{what}: invalid PEM certificate: {e}"));
                None
            }
        }
    }

    fn key(&mut self, pem: &[u8], mark: &Mark, what: &str) -> Option<PrivateKeyDer<'static>> {
        match PrivateKeyDer::from_pem_slice(pem) {
            Ok(k) => Some(k),
            Err(e) => {
                self.error(
                    mark,
                    format!("{what}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"),
                );
                None
            }
        }
    }

    /// A certificate + key pair from inline/base64 values or files.
    fn cert_pair(
        &mut self,
        cert: (&Option<Spanned<String>>, &Option<Spanned<String>>),
        key: (&Option<Spanned<String>>, &Option<Spanned<String>>),
        what: &str,
        fallback: &Mark,
        may_be_file: bool,
    ) -> Option<Certificate> {
        let cert_pem = match cert {
            (Some(v), _) => (
                self.pem_value(v, &format!("{what} certificate"), may_be_file),
                v.mark.clone(),
            ),
            (None, Some(f)) => (
                self.read_file(f, &format!("{what} certificate")),
                f.mark.clone(),
            ),
            (None, None) => {
                self.error(fallback, format!("{what}: certificate missing"));
                return None;
            }
        };
        let key_pem = match key {
            (Some(v), _) => (
                self.pem_value(v, &format!("{what} key"), may_be_file),
                v.mark.clone(),
            ),
            (None, Some(f)) => (self.read_file(f, &format!("{what} key")), f.mark.clone()),
            (None, None) => {
                self.error(
                    &cert_pem.1,
                    format!("{what}: key missing for this certificate"),
                );
                return None;
            }
        };
        let chain = self.certs(&cert_pem.0?, &cert_pem.1, what)?;
        let key = self.key(&key_pem.0?, &key_pem.1, what)?;
        Some(Certificate {
            chain,
            key,
            origin: cert_pem.1.to_string(),
        })
    }

    pub(super) fn certificates(&mut self, opts: &Options) -> Vec<Certificate> {
        let mut out = Vec::new();
        let file_mark = self.file_mark.clone();
        if opts.certificate.is_some() || opts.certificate_file.is_some() {
            let fallback = opts
                .certificate
                .as_ref()
                .or(opts.certificate_file.as_ref())
                .map(|c| c.mark.clone())
                .unwrap_or(file_mark.clone());
            if let Some(c) = self.cert_pair(
                (&opts.certificate, &opts.certificate_file),
                (&opts.certificate_key, &opts.certificate_key_file),
                "server",
                &fallback,
                false,
            ) {
                out.push(c);
            }
        } else if let Some(k) = opts
            .certificate_key
            .as_ref()
            .or(opts.certificate_key_file.as_ref())
        {
            self.error(
                &k.mark,
                "certificate key given without `certificate` or `certificate_file`",
            );
        }
        for entry in opts.certificates.iter().flatten() {
            if let Some(c) = self.cert_pair(
                (&entry.value.cert, &None),
                (&entry.value.key, &None),
                "certificates entry",
                &entry.mark,
                true,
            ) {
                out.push(c);
            }
        }
        out
    }

    pub(super) fn upstream_tls(&mut self, o: &RouteOptions) -> UpstreamTls {
        let mut tls = UpstreamTls {
            skip_verify: o.tls_skip_verify.unwrap_or(false),
            server_name: o
                .tls_upstream_server_name
                .as_ref()
                .or(o.tls_server_name.as_ref())
                .map(|s| s.value.clone()),
            ..UpstreamTls::default()
        };
        let ca_pem = match (&o.tls_custom_ca, &o.tls_custom_ca_file) {
            (Some(v), _) => self
                .pem_value(v, "tls_custom_ca", false)
                .map(|p| (p, v.mark.clone())),
            (None, Some(f)) => self
                .read_file(f, "tls_custom_ca")
                .map(|p| (p, f.mark.clone())),
            (None, None) => None,
        };
        if let Some((pem, mark)) = ca_pem
            && let Some(certs) = self.certs(&pem, &mark, "tls_custom_ca")
        {
            tls.custom_ca = certs;
        }
        let any_client = o.tls_client_cert.is_some()
            || o.tls_client_cert_file.is_some()
            || o.tls_client_key.is_some()
            || o.tls_client_key_file.is_some();
        if any_client {
            let mark = [
                &o.tls_client_cert,
                &o.tls_client_cert_file,
                &o.tls_client_key,
                &o.tls_client_key_file,
            ]
            .into_iter()
            .flatten()
            .map(|s| s.mark.clone())
            .next()
            .unwrap_or(self.file_mark.clone());
            tls.client_cert = self.cert_pair(
                (&o.tls_client_cert, &o.tls_client_cert_file),
                (&o.tls_client_key, &o.tls_client_key_file),
                "tls_client_cert",
                &mark,
                false,
            );
        }
        tls
    }

    /// PEM from `key` (inline or base64) or `key_file`; both is an error.
    pub(super) fn pem_or_file(
        &mut self,
        inline: &Option<Spanned<String>>,
        file: &Option<Spanned<String>>,
        what: &str,
    ) -> Option<(Vec<u8>, Mark)> {
        // Set to nothing: not set.
        let given = |v: &Option<Spanned<String>>| v.clone().filter(|v| !v.value.trim().is_empty());
        let (inline, file) = (&given(inline), &given(file));
        match (inline, file) {
            (Some(v), Some(f)) => {
                self.error(
                    &f.mark,
                    format!("set only one of `{what}` and `{what}_file`"),
                );
                let _ = v;
                None
            }
            (Some(v), None) => self.pem_value(v, what, false).map(|p| (p, v.mark.clone())),
            (None, Some(f)) => self.read_file(f, what).map(|p| (p, f.mark.clone())),
            (None, None) => None,
        }
    }

    /// A route's `tls_downstream_client_ca(_file)`.
    pub(super) fn route_client_ca(&mut self, o: &RouteOptions) -> Vec<CertificateDer<'static>> {
        let given = self.pem_or_file(
            &o.tls_downstream_client_ca,
            &o.tls_downstream_client_ca_file,
            "tls_downstream_client_ca",
        );
        given
            .and_then(|(pem, mark)| self.certs(&pem, &mark, "tls_downstream_client_ca"))
            .unwrap_or_default()
    }

    /// `downstream_mtls` with the routes' CAs: `None` when no CA is
    /// configured anywhere.
    pub(super) fn client_cert_rules(
        &mut self,
        opts: Option<&Spanned<DownstreamMtlsOptions>>,
        routes: &[Route],
    ) -> Option<ClientCertRules> {
        let empty = DownstreamMtlsOptions::default();
        let (m, mark) = match opts {
            Some(o) => (&o.value, o.mark.clone()),
            None => (&empty, self.file_mark.clone()),
        };
        let ca = self
            .pem_or_file(&m.ca, &m.ca_file, "downstream_mtls.ca")
            .and_then(|(pem, mark)| self.certs(&pem, &mark, "downstream_mtls.ca"))
            .unwrap_or_default();
        let mut crls = Vec::new();
        if let Some((pem, crl_mark)) = self.pem_or_file(&m.crl, &m.crl_file, "downstream_mtls.crl")
        {
            let parsed: Result<Vec<_>, _> =
                CertificateRevocationListDer::pem_slice_iter(&pem).collect();
            match parsed {
                Ok(list) if !list.is_empty() => crls = list,
                Ok(_) | Err(_) => self.error(
                    &crl_mark,
                    "downstream_mtls.crl: no PEM `X509 CRL` found (give the CA's revocation list in PEM, or its base64)",
                ),
            }
        }
        let enforcement = match m
            .enforcement
            .as_ref()
            .map(|e| (e.value.trim().to_ascii_lowercase(), &e.mark))
        {
            None => Enforcement::PolicyWithDefaultDeny,
            Some((e, _)) if e.is_empty() || e == "policy_with_default_deny" => {
                Enforcement::PolicyWithDefaultDeny
            }
            Some((e, _)) if e == "policy" => Enforcement::Policy,
            Some((e, _)) if e == "reject_connection" => Enforcement::RejectConnection,
            Some((e, mark)) => {
                self.error(
                    mark,
                    format!("downstream_mtls.enforcement `{e}` must be policy_with_default_deny, policy or reject_connection"),
                );
                Enforcement::PolicyWithDefaultDeny
            }
        };
        let mut match_subject_alt_names = Vec::new();
        if let Some(node) = &m.match_subject_alt_names {
            let items: &[crate::yaml::Node] = match &node.0.value {
                Value::Seq(items) => items,
                _ if node.0.is_null() => &[],
                _ => {
                    self.error(&node.0.mark, "downstream_mtls.match_subject_alt_names must be a list of `{dns|email|uri|ip_address|user_principal_name: regex}`");
                    &[]
                }
            };
            for item in items {
                let Value::Map(entries) = &item.value else {
                    self.error(&item.mark, "each match_subject_alt_names entry must be a mapping like `dns: '.*\\.example\\.com'`");
                    continue;
                };
                for (k, v) in entries {
                    let kind = match k.as_str().unwrap_or_default().to_ascii_lowercase().as_str() {
                        "dns" => SanKind::Dns,
                        "email" => SanKind::Email,
                        "uri" => SanKind::Uri,
                        "ip_address" => SanKind::IpAddress,
                        "user_principal_name" => SanKind::UserPrincipalName,
                        other => {
                            self.error(&k.mark, format!("unknown subject alt name type `{other}` (dns, email, uri, ip_address, user_principal_name)"));
                            continue;
                        }
                    };
                    let Some(text) = v.as_str() else {
                        self.error(&v.mark, "must be a regular expression");
                        continue;
                    };
                    // The whole name must match (RE2 full match, as Pomerium).
                    match regex::Regex::new(&format!("^(?:{text})$")) {
                        Ok(pattern) => match_subject_alt_names.push(SanMatcher { kind, pattern }),
                        Err(e) => self.error(&v.mark, format!("invalid regular expression: {e}")),
                    }
                }
            }
        }
        let max_verify_depth = m.max_verify_depth.as_ref().map_or(1, |d| d.value);
        let mut all_cas = ca.clone();
        for r in routes {
            for c in &r.client_ca {
                if !all_cas.contains(c) {
                    all_cas.push(c.clone());
                }
            }
        }
        if all_cas.is_empty() {
            // Nothing to check certificates against: nothing is asked for.
            let set = m.crl.is_some()
                || m.crl_file.is_some()
                || m.enforcement.is_some()
                || m.match_subject_alt_names.is_some()
                || m.max_verify_depth.is_some();
            // A blank `ca` is no CA (as `pem_or_file` reads it): settings
            // beside it would otherwise switch client certificates off.
            let blank =
                |v: &Option<Spanned<String>>| v.as_ref().is_none_or(|v| v.value.trim().is_empty());
            let ca_given = !blank(&m.ca) || !blank(&m.ca_file);
            if opts.is_some() && set && !ca_given {
                self.error(
                    &mark,
                    "downstream_mtls needs a `ca` (or `ca_file`), or a route's `tls_downstream_client_ca`: without a CA no client certificate can be checked",
                );
            }
            return None;
        }
        Some(ClientCertRules {
            ca,
            crls,
            enforcement,
            match_subject_alt_names,
            max_verify_depth,
            all_cas,
        })
    }

    /// `metrics_certificate(_file)`, `metrics_certificate_key(_file)` and
    /// `metrics_client_ca(_file)`.
    pub(super) fn metrics_tls(&mut self, o: &Options) -> Option<MetricsTls> {
        let set =
            |v: &Option<Spanned<String>>| v.as_ref().is_some_and(|v| !v.value.trim().is_empty());
        let any_cert = set(&o.metrics_certificate)
            || set(&o.metrics_certificate_file)
            || set(&o.metrics_certificate_key)
            || set(&o.metrics_certificate_key_file);
        let client_ca = self
            .pem_or_file(
                &o.metrics_client_ca,
                &o.metrics_client_ca_file,
                "metrics_client_ca",
            )
            .and_then(|(pem, mark)| self.certs(&pem, &mark, "metrics_client_ca"));
        if !any_cert {
            if client_ca.is_some() {
                let mark = o
                    .metrics_client_ca
                    .as_ref()
                    .or(o.metrics_client_ca_file.as_ref())
                    .map_or(self.file_mark.clone(), |v| v.mark.clone());
                self.error(
                    &mark,
                    "metrics_client_ca needs metrics_certificate and metrics_certificate_key: client certificates are asked for over TLS",
                );
            }
            return None;
        }
        let mark = [
            &o.metrics_certificate,
            &o.metrics_certificate_file,
            &o.metrics_certificate_key,
            &o.metrics_certificate_key_file,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.mark.clone())
        .next()
        .unwrap_or(self.file_mark.clone());
        let certificate = self.cert_pair(
            (&o.metrics_certificate, &o.metrics_certificate_file),
            (&o.metrics_certificate_key, &o.metrics_certificate_key_file),
            "metrics_certificate",
            &mark,
            false,
        )?;
        Some(MetricsTls {
            certificate,
            client_ca: client_ca.unwrap_or_default(),
        })
    }
}

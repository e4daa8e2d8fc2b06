//! TLS material: PEM values and files, the server's certificates, and a
//! route's upstream TLS (custom CA, client certificate).

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Compiler;
use crate::compiled::{Certificate, UpstreamTls};
use crate::de::Spanned;
use crate::model::{Options, RouteOptions};
use crate::yaml::Mark;

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

    fn certs(
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
        if let Some((pem, mark)) = ca_pem {
            if let Some(certs) = self.certs(&pem, &mark, "tls_custom_ca") {
                tls.custom_ca = certs;
            }
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
}

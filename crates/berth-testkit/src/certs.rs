//! Certificates for TLS tests, made by the real `openssl` tool: a CA, a server certificate for
//! 127.0.0.1 and a client certificate, under Docker's file names (`ca.pem`, `server-cert.pem`,
//! `server-key.pem`, `cert.pem`, `key.pem`).

use std::path::Path;

use anyhow::Context;

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    #[allow(clippy::disallowed_methods)] // certificates for the test, made by the real tool
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .context("running openssl (apt-get install openssl)")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Writes a CA named `ca_name` and the certificates it signs into `dir`.
pub fn make(dir: &Path, ca_name: &str) -> anyhow::Result<()> {
    let subj = format!("/CN={ca_name}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &subj,
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    )?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n")?;
    for (who, subj, ext) in [
        ("server", "/CN=127.0.0.1", "server.ext"),
        ("client", "/CN=client", "client.ext"),
    ] {
        let (key, csr, cert) = (
            format!("{who}-key.pem"),
            format!("{who}.csr"),
            format!("{who}-cert.pem"),
        );
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", &key, "-out",
                &csr,
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &cert,
            ],
        )?;
    }
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem"))?;
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem"))?;
    Ok(())
}

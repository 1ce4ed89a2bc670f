//! Registries over HTTPS: a certificate from a private CA is refused with
//! the option that fixes it, and accepted with `ca_file`.

use std::path::Path;
use std::process::Command;

use crate::support::registry::Registry;
use crate::support::skillimage::SkillImage;
use crate::support::TestEnv;

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the
/// openssl command line tool.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=skillsync test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

#[test]
fn a_private_ca_is_refused_with_a_hint_and_trusted_with_ca_file() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let registry = Registry::start_with_tls(
        &certs.path().join("server.pem"),
        &certs.path().join("server.key"),
    );
    // The test publisher speaks plain HTTP: publish with skopeo over TLS.
    let env = TestEnv::new();
    let img = SkillImage::new("hello", "1.0.0").build();
    let layout = env.root().join("layout");
    crate::support::skillimage::write_oci_layout(&layout, &[("hello:1.0.0", &img)]);
    // skopeo trusts the *.crt files of --dest-cert-dir (and would take a
    // *.key there for a client key, so the CA gets a directory of its own).
    let cert_dir = certs.path().join("skopeo");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(certs.path().join("ca.pem"), cert_dir.join("ca.crt")).unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--dest-cert-dir"])
        .arg(&cert_dir)
        .arg(format!("oci:{}:hello:1.0.0", layout.display()))
        .arg(format!("docker://{}/examples/hello:1.0.0", registry.host()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let config = |ca: Option<&Path>| {
        let mut text = String::new();
        if let Some(ca) = ca {
            text.push_str(&format!(
                "[registries.\"{}\"]\nca_file = \"{}\"\n\n",
                registry.host(),
                ca.display()
            ));
        }
        text.push_str(&format!(
            "[skills.hello]\nimage = \"{}/examples/hello\"\n",
            registry.host()
        ));
        env.write_config(&text);
    };
    config(None);
    let out = env.daemon().arg("--once").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ca_file"), "says which option fixes it: {err}");

    config(Some(&certs.path().join("ca.pem")));
    let out = env.daemon().arg("--once").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.skill_dir("claude", "hello").join("SKILL.md").exists());
}

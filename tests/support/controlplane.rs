//! The test control plane (`docs/design.md`): a real etcd and a real kube-apiserver on
//! free loopback ports, with certificates made for the run, torn down on drop.

use std::{
    fs,
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};
use rcgen::{CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tempfile::TempDir;

/// How long etcd and kube-apiserver get to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct ControlPlane {
    /// Holds certificates, etcd data and logs; removed on drop.
    dir: TempDir,
    etcd: Child,
    apiserver: std::sync::Mutex<Child>,
    /// Started on request: it aggregates the built-in roles, collects garbage and finishes
    /// namespace deletions.
    controller_manager: std::sync::Mutex<Option<Child>>,
    /// kubeconfig of a `system:masters` user, usable by kubectl too.
    pub kubeconfig: PathBuf,
    /// Folder with kube-apiserver, etcd and kubectl.
    pub assets: PathBuf,
    /// The flags kube-apiserver was started with, to start it again.
    apiserver_args: Vec<String>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub async fn start() -> ControlPlane {
        let assets = assets_dir();
        let dir = tempfile::Builder::new().prefix("oauth-operator-cp-").tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);

        let (etcd_port, etcd_peer_port, api_port) = (free_port(), free_port(), free_port());
        write_certs(dir.path());

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        let etcd = spawn(
            Command::new(assets.join("etcd")).args([
                "--name=default",
                &format!("--data-dir={}", path("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ]),
            &path("etcd.log"),
        );
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", etcd_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen; see {}", path("etcd.log").display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let file = |name: &str| path(name).display().to_string();
        // Every request at Metadata level: tests count who wrote what.
        fs::write(
            path("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )
        .expect("write audit policy");
        let apiserver_args: Vec<String> = [
            &format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            &format!("--secure-port={api_port}"),
            &format!("--cert-dir={}", file("certs")),
            &format!("--tls-cert-file={}", file("apiserver.crt")),
            &format!("--tls-private-key-file={}", file("apiserver.key")),
            &format!("--client-ca-file={}", file("ca.crt")),
            &format!("--service-account-key-file={}", file("sa.pub")),
            &format!("--service-account-signing-key-file={}", file("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            &format!("--audit-policy-file={}", file("audit-policy.yaml")),
            &format!("--audit-log-path={}", file("audit.log")),
            // One file, never rotated (by default it rotates at 100 MB, which a benchmark
            // reaches: the counts taken from it would restart from zero).
            "--audit-log-maxsize=1000000",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let apiserver =
            spawn(Command::new(assets.join("kube-apiserver")).args(&apiserver_args), &path("kube-apiserver.log"));

        let kubeconfig = path("kubeconfig");
        fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{api_port}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: test\n  context: {{cluster: test, user: admin, namespace: default}}\ncurrent-context: test\n",
                ca = file("ca.crt"),
                crt = file("admin.crt"),
                key = file("admin.key"),
            ),
        )
        .expect("write kubeconfig");

        let cp = ControlPlane {
            dir,
            etcd,
            apiserver: std::sync::Mutex::new(apiserver),
            controller_manager: std::sync::Mutex::default(),
            kubeconfig,
            assets,
            apiserver_args,
        };
        cp.wait_ready(deadline).await;
        cp
    }

    /// Kills kube-apiserver (SIGKILL) and starts it again on the same etcd, port and
    /// certificates; returns once it is ready.
    pub async fn restart_apiserver(&self) {
        {
            let mut old = self.apiserver.lock().unwrap_or_else(|e| e.into_inner());
            let _ = old.kill();
            let _ = old.wait();
        }
        let port: u16 = self
            .apiserver_args
            .iter()
            .find_map(|a| a.strip_prefix("--secure-port=")?.parse().ok())
            .expect("a secure port");
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} stays taken");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = self.dir.path().join("kube-apiserver.log");
        let started = spawn(Command::new(self.assets.join("kube-apiserver")).args(&self.apiserver_args), &log);
        *self.apiserver.lock().unwrap_or_else(|e| e.into_inner()) = started;
        self.wait_ready(deadline).await;
    }

    /// Starts kube-controller-manager with the controllers a cluster of users needs: the
    /// aggregation of the built-in `admin`/`edit`/`view` roles, garbage collection by owner
    /// references and namespace deletion. Waits until `edit` carries `rule` (an aggregated
    /// ClusterRole's first rule, as `apiGroups/resource`).
    pub async fn start_controller_manager(&self, rule: (&str, &str)) {
        let child = spawn(
            Command::new(self.assets.join("kube-controller-manager")).args([
                &format!("--kubeconfig={}", self.kubeconfig.display()),
                "--controllers=clusterrole-aggregation-controller,garbage-collector-controller,namespace-controller",
                "--leader-elect=false",
                "--secure-port=0",
            ]),
            &self.dir.path().join("kube-controller-manager.log"),
        );
        *self.controller_manager.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(self.client().await);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let edit = roles.get_opt("edit").await.ok().flatten();
            let aggregated = edit.and_then(|r| r.rules).is_some_and(|rules| {
                rules.iter().any(|r| {
                    r.api_groups.iter().flatten().any(|g| g == rule.0)
                        && r.resources.iter().flatten().any(|res| res == rule.1)
                })
            });
            if aggregated {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-controller-manager did not aggregate the edit role within {START_TIMEOUT:?}:\n{}",
                self.log_tail("kube-controller-manager")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A client with cluster-admin rights.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
        Client::try_from(config).expect("client")
    }

    /// Applies the CRDs in `crds/` and waits until both are Established.
    pub async fn install_crds(&self) -> Vec<CustomResourceDefinition> {
        let client = self.client().await;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let crds = crds_from_repo();
        for crd in &crds {
            let name = crd.metadata.name.clone().expect("CRD has a name");
            api.patch(&name, &PatchParams::apply("oauth-operator-tests").force(), &Patch::Apply(crd))
                .await
                .unwrap_or_else(|e| panic!("install CRD {name}: {e}"));
        }
        for crd in &crds {
            let name = crd.metadata.name.as_deref().expect("CRD has a name");
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(api.clone(), name, conditions::is_crd_established()),
            )
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
            .expect("watch CRD");
        }
        // kubectl (explain, apply) reads the published OpenAPI, which follows Established.
        let client = api.into_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        for crd in &crds {
            let (group, kind) = (&crd.spec.group, &crd.spec.names.kind);
            let path = format!("/openapi/v3/apis/{group}/{}", crd.spec.versions[0].name);
            loop {
                let req = http::Request::get(path.as_str()).body(Vec::new()).expect("request");
                if client.request_text(req).await.is_ok_and(|doc| doc.contains(&format!("\"kind\":\"{kind}\""))) {
                    break;
                }
                assert!(Instant::now() < deadline, "OpenAPI for {kind} not published within 30s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        crds
    }

    /// A kubeconfig file `<name>.kubeconfig` in the control plane's folder for a bearer token.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context: {{cluster: test, user: {name}}}\ncurrent-context: test\n",
                self.server(),
                self.ca_file().display()
            ),
        )
        .expect("write kubeconfig");
        path
    }

    /// A client authenticated by a bearer token (built in memory: tests run side by side).
    pub async fn token_client(&self, token: &str) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
        config.auth_info = kube::config::AuthInfo { token: Some(token.to_string().into()), ..Default::default() };
        Client::try_from(config).expect("client")
    }

    /// The path of a control-plane binary, such as `kubectl`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.assets.join(name)
    }

    /// Write requests (create, update, patch, delete) that `user` made so far, from the audit
    /// log, as `verb resource namespace/name`.
    pub fn writes_by(&self, user: &str) -> Vec<String> {
        self.audit()
            .filter(|e| e["user"]["username"] == user)
            .filter(|e| matches!(e["verb"].as_str(), Some("create" | "update" | "patch" | "delete")))
            .map(|e| {
                let o = &e["objectRef"];
                let sub = o["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
                format!(
                    "{} {}{sub} {}/{}",
                    e["verb"].as_str().unwrap_or(""),
                    o["resource"].as_str().unwrap_or(""),
                    o["namespace"].as_str().unwrap_or(""),
                    o["name"].as_str().unwrap_or("")
                )
            })
            .collect()
    }

    /// Requests of `verb` on one object (`resource`/`name`) that `user` made so far.
    pub fn requests_by(&self, user: &str, verb: &str, resource: &str, name: &str) -> usize {
        self.audit()
            .filter(|e| e["user"]["username"] == user && e["verb"] == verb)
            .filter(|e| e["objectRef"]["resource"] == resource && e["objectRef"]["name"] == name)
            .count()
    }

    /// Every audit event (JSON) so far.
    /// Read line by line: the log of a benchmark runs to hundreds of megabytes, and the line the
    /// API server is writing may end mid-character.
    pub fn audit(&self) -> impl Iterator<Item = serde_json::Value> {
        use std::io::BufRead;
        let file = fs::File::open(self.dir.path().join("audit.log")).ok();
        file.into_iter()
            .flat_map(|f| std::io::BufReader::new(f).split(b'\n'))
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_slice::<serde_json::Value>(&line).ok())
    }

    /// The temp dir of this control plane, for files of the processes around it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate of the API server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The API server's URL.
    pub fn server(&self) -> String {
        let kubeconfig = fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).expect("server in kubeconfig").to_string()
    }

    /// The last lines of a component's log, for failure messages.
    pub fn log_tail(&self, component: &str) -> String {
        log_tail(&self.dir.path().join(format!("{component}.log")))
    }

    async fn wait_ready(&self, deadline: Instant) {
        let client = self.client().await;
        loop {
            if let Ok(Some(status)) = self.apiserver.lock().unwrap_or_else(|e| e.into_inner()).try_wait() {
                panic!("kube-apiserver exited ({status}):\n{}", self.log_tail("kube-apiserver"));
            }
            let req = http::Request::get("/readyz").body(Vec::new()).expect("request");
            if client.request_text(req).await.is_ok_and(|body| body == "ok") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready within {START_TIMEOUT:?}:\n{}",
                self.log_tail("kube-apiserver")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut kcm) = self.controller_manager.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            stop(&mut kcm);
        }
        stop(self.apiserver.get_mut().unwrap_or_else(|e| e.into_inner()));
        stop(&mut self.etcd);
    }
}

/// The folder holding kube-apiserver, etcd and kubectl: `KUBEBUILDER_ASSETS` when set,
/// otherwise the cache that `tests/controlplane/build.sh` fills from Go modules.
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS") {
        return PathBuf::from(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/build.sh");
    let out =
        Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run tests/controlplane/build.sh");
    assert!(out.status.success(), "tests/controlplane/build.sh failed");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(stdout.lines().last().expect("build.sh prints the folder").trim())
}

/// The CRDs as committed in `crds/`.
pub fn crds_from_repo() -> Vec<CustomResourceDefinition> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            let text = fs::read_to_string(file).expect("read CRD file");
            yaml_serde::Deserializer::from_str(&text)
                .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
                .collect::<Vec<CustomResourceDefinition>>()
        })
        .collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind a loopback port").port()
}

/// Spawns a component with its output in `log`. It is killed when the spawning thread ends,
/// so start the control plane from a thread that outlives the tests (the main thread).
pub fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = fs::File::create(log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()))
}

/// SIGTERM, a short grace period, then SIGKILL.
pub fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall on a pid we own and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A CA, the API server's serving certificate, an admin client certificate
/// (`system:masters`) and the service-account signing key.
fn write_certs(dir: &Path) {
    let write = |name: &str, pem: String| fs::write(dir.join(name), pem).expect("write cert");

    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "oauth-operator test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    write("ca.crt", ca.pem());

    let leaf = |sans: Vec<String>, cn: &str, org: Option<&str>, usage| {
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("sign");
        (cert.pem(), key.serialize_pem())
    };
    let sans = ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default.svc"];
    let (crt, key) = leaf(sans.map(String::from).to_vec(), "kube-apiserver", None, ExtendedKeyUsagePurpose::ServerAuth);
    write("apiserver.crt", crt);
    write("apiserver.key", key);
    let (crt, key) = leaf(Vec::new(), "admin", Some("system:masters"), ExtendedKeyUsagePurpose::ClientAuth);
    write("admin.crt", crt);
    write("admin.key", key);
    let sa = KeyPair::generate().expect("key");
    write("sa.key", sa.serialize_pem());
    write("sa.pub", sa.public_key_pem());
}

#include "kube_api_lb/config/flags.h"
#include "kube_api_lb/config/load.h"
#include "kube_api_lb/config/yaml_config.h"
#include "kube_api_lb/manifest/manifest.h"
#include "kube_api_lb/version.h"

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

using namespace kal;

namespace {

Config lab_config() {
  Config c;
  c.endpoints = *parse_endpoint_list("192.168.10.11:6443,192.168.10.12:6443,192.168.10.13:6443");
  return c;
}

ManifestOptions opts() {
  ManifestOptions o;
  o.image = "kube-api-lb:test";
  return o;
}

YAML::Node render(const Config &c, const ManifestOptions &o) {
  auto r = render_manifest(c, o);
  REQUIRE_MESSAGE(r.ok(), r.error());
  return YAML::Load(*r);
}

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Compares `text` with tests/data/golden/<name>; KAL_UPDATE_GOLDEN=1 rewrites the file instead.
void check_golden(const std::string &name, const std::string &text) {
  const std::string path = std::string(KAL_SOURCE_DIR) + "/tests/data/golden/" + name;
  if (const char *u = std::getenv("KAL_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream(path, std::ios::binary) << text;
  }
  const std::string want = read_file(path);
  CHECK_MESSAGE(text == want, "golden file "
                                  << path
                                  << " differs; rerun with KAL_UPDATE_GOLDEN=1 and review "
                                     "the diff if the change is intended\n--- got:\n"
                                  << text);
}

YAML::Node container(const YAML::Node &m) {
  REQUIRE(m["spec"]["containers"].IsSequence());
  REQUIRE(m["spec"]["containers"].size() == 1);
  return m["spec"]["containers"][0];
}

std::vector<std::string> strings(const YAML::Node &seq) {
  std::vector<std::string> v;
  for (const auto &n : seq) {
    v.push_back(n.as<std::string>());
  }
  return v;
}

// Every field issue 5 asks for, on a manifest rendered for lab_config() in args mode.
void check_every_field(const YAML::Node &m, const std::string &image) {
  const Config c = lab_config();
  CHECK(m["apiVersion"].as<std::string>() == "v1");
  CHECK(m["kind"].as<std::string>() == "Pod");
  CHECK(m["metadata"]["name"].as<std::string>() == "kube-api-lb");
  CHECK(m["metadata"]["namespace"].as<std::string>() == "kube-system");
  CHECK(m["metadata"]["labels"]["k8s-app"].as<std::string>() == "kube-api-lb");
  CHECK(m["metadata"]["labels"]["addonmanager.kubernetes.io/mode"].as<std::string>() ==
        "Reconcile");
  const std::string sum =
      m["metadata"]["annotations"]["kube-api-lb.io/config-checksum"].as<std::string>();
  CHECK(sum == config_checksum(c));
  CHECK(sum.size() == 64);
  CHECK(sum.find_first_not_of("0123456789abcdef") == std::string::npos);

  const YAML::Node spec = m["spec"];
  CHECK(spec["hostNetwork"].as<bool>() == true);
  CHECK(spec["dnsPolicy"].as<std::string>() == "Default");
  CHECK(spec["priorityClassName"].as<std::string>() == "system-node-critical");
  CHECK(spec["nodeSelector"]["kubernetes.io/os"].as<std::string>() == "linux");
  // The proxy's 10 s graceful shutdown fits before kubelet's SIGKILL.
  CHECK(spec["terminationGracePeriodSeconds"].as<int>() == 15);
  CHECK_FALSE(spec["volumes"]);

  const YAML::Node k = container(m);
  CHECK(k["name"].as<std::string>() == "kube-api-lb");
  CHECK(k["image"].as<std::string>() == image);
  CHECK(k["imagePullPolicy"].as<std::string>() == "IfNotPresent");
  CHECK(strings(k["args"]) ==
        std::vector<std::string>{
            "--endpoints=192.168.10.11:6443,192.168.10.12:6443,192.168.10.13:6443"});
  CHECK_FALSE(k["command"]); // the image's ENTRYPOINT is the binary
  // Requests no larger than Kubespray's nginx-proxy (25m, 32M); a memory limit.
  CHECK(k["resources"]["requests"]["cpu"].as<std::string>() == "25m");
  CHECK(k["resources"]["requests"]["memory"].as<std::string>() == "32M");
  CHECK(k["resources"]["limits"]["memory"].as<std::string>() == "256Mi");
  CHECK_FALSE(k["resources"]["limits"]["cpu"]);

  CHECK(k["livenessProbe"]["httpGet"]["path"].as<std::string>() == "/healthz");
  CHECK(k["livenessProbe"]["httpGet"]["port"].as<int>() == 8081);
  CHECK(k["livenessProbe"]["httpGet"]["host"].as<std::string>() == "127.0.0.1");
  CHECK(k["readinessProbe"]["httpGet"]["path"].as<std::string>() == "/readyz");
  CHECK(k["readinessProbe"]["httpGet"]["port"].as<int>() == 8081);
  CHECK(k["readinessProbe"]["httpGet"]["host"].as<std::string>() == "127.0.0.1");

  const YAML::Node sc = k["securityContext"];
  CHECK(sc["runAsNonRoot"].as<bool>() == true);
  CHECK(sc["runAsUser"].as<int>() == 65532);
  CHECK(sc["runAsGroup"].as<int>() == 65532);
  CHECK(sc["readOnlyRootFilesystem"].as<bool>() == true);
  CHECK(sc["allowPrivilegeEscalation"].as<bool>() == false);
  CHECK(strings(sc["capabilities"]["drop"]) == std::vector<std::string>{"ALL"});
  CHECK_FALSE(sc["capabilities"]["add"]);
  CHECK_FALSE(sc["privileged"]);
  CHECK(sc["seccompProfile"]["type"].as<std::string>() == "RuntimeDefault");
  CHECK_FALSE(k["volumeMounts"]);
}

} // namespace

TEST_CASE("manifest: every field of the static pod") {
  check_every_field(render(lab_config(), opts()), "kube-api-lb:test");
}

TEST_CASE("manifest: every field of the shipped manifests/kube-api-lb.yaml") {
  // tests/integration/test_manifest.py proves the file is the generator's output; this proves
  // the output has every field right.
  const YAML::Node m = YAML::LoadFile(std::string(KAL_SOURCE_DIR) + "/manifests/kube-api-lb.yaml");
  check_every_field(m, std::string("kube-api-lb:") + KAL_VERSION);
}

TEST_CASE("manifest: config file on a hostPath") {
  const Config c = lab_config();
  ManifestOptions o = opts();
  o.config_hostpath = "/etc/kube-api-lb/"; // trailing slash is normalised
  const YAML::Node m = render(c, o);
  const YAML::Node k = container(m);
  CHECK(strings(k["args"]) == std::vector<std::string>{"--config=/etc/kube-api-lb/config.yaml"});
  REQUIRE(k["volumeMounts"].size() == 1);
  CHECK(k["volumeMounts"][0]["name"].as<std::string>() == "config");
  CHECK(k["volumeMounts"][0]["mountPath"].as<std::string>() == "/etc/kube-api-lb");
  CHECK(k["volumeMounts"][0]["readOnly"].as<bool>() == true);
  const YAML::Node vols = m["spec"]["volumes"];
  REQUIRE(vols.size() == 1);
  CHECK(vols[0]["name"].as<std::string>() == "config");
  CHECK(vols[0]["hostPath"]["path"].as<std::string>() == "/etc/kube-api-lb");
  CHECK(vols[0]["hostPath"]["type"].as<std::string>() == "Directory");
  // The annotation is the checksum of exactly the file the config-hostpath holds.
  CHECK(m["metadata"]["annotations"]["kube-api-lb.io/config-checksum"].as<std::string>() ==
        config_checksum(c));
}

TEST_CASE("manifest: the config file reads back to the same config, and the checksum tracks it") {
  Config c = lab_config();
  c.source = "somewhere.yaml";
  const std::string text = render_config_file(c);
  CHECK(text.find("somewhere") == std::string::npos); // the file does not depend on `source`
  auto back = parse_yaml_config(text, "config.yaml");
  REQUIRE_MESSAGE(back.ok(), back.error());
  Config want = c;
  want.source = "config.yaml";
  CHECK(*back == want);

  // The running proxy's config hash is a prefix of the checksum (same bytes, same digest).
  CHECK(config_checksum(c).substr(0, 16) == config_hash(c));
  CHECK(config_checksum(c).size() == 64);

  const std::string before = config_checksum(c);
  c.source = "flags";
  CHECK(config_checksum(c) == before);
  c.health.rise = 3;
  CHECK(config_checksum(c) != before);
  // The annotation moves with any setting, also in args mode.
  auto m1 = render(lab_config(), opts());
  auto m2 = render(c, opts());
  CHECK(m1["metadata"]["annotations"]["kube-api-lb.io/config-checksum"].as<std::string>() !=
        m2["metadata"]["annotations"]["kube-api-lb.io/config-checksum"].as<std::string>());
}

TEST_CASE("manifest: probe host follows the admin bind address") {
  Config c = lab_config();
  auto host_of = [&](const char *admin) {
    c.admin.listen = {*parse_host_port(admin)};
    const YAML::Node k = container(render(c, opts()));
    CHECK(k["readinessProbe"]["httpGet"]["port"].as<int>() == c.admin.listen[0].port);
    const YAML::Node h = k["livenessProbe"]["httpGet"]["host"];
    CHECK(bool(h) == bool(k["readinessProbe"]["httpGet"]["host"]));
    return h ? h.as<std::string>() : std::string("<none>");
  };
  CHECK(host_of("127.0.0.1:8081") == "127.0.0.1");
  CHECK(host_of("[::1]:9000") == "::1");
  CHECK(host_of("10.1.2.3:8081") == "10.1.2.3");
  // The IPv4 wildcard: kubelet's default (the pod IP, which is the node IP with hostNetwork)
  // works.
  CHECK(host_of("0.0.0.0:8081") == "<none>");
  // The IPv6 wildcard is bound IPv6-only, so an IPv4 pod IP would be refused: probe loopback.
  CHECK(host_of("[::]:8081") == "::1");
  CHECK(host_of("[0:0:0:0:0:0:0:0]:8081") == "::1");
}

TEST_CASE("manifest: resources are options") {
  const Config c = lab_config();
  ManifestOptions o = opts();
  o.memory_limit = "128Mi";
  o.cpu_limit = "500m";
  o.cpu_request = "50m";
  const YAML::Node k = container(render(c, o));
  CHECK(k["resources"]["limits"]["memory"].as<std::string>() == "128Mi");
  CHECK(k["resources"]["limits"]["cpu"].as<std::string>() == "500m");
  CHECK(k["resources"]["requests"]["cpu"].as<std::string>() == "50m");
  o.memory_limit.clear();
  o.cpu_limit.clear();
  CHECK_FALSE(container(render(c, o))["resources"]["limits"]);
}

TEST_CASE("manifest: the directories of health-check files outside the config directory are "
          "mounted") {
  Config c = lab_config();
  c.health.ca_file = "/etc/kubernetes/ssl/ca.crt";
  c.health.client_cert = "/etc/kube-api-lb/client.crt";
  c.health.client_key = "/etc/kube-api-lb/client.key";
  ManifestOptions o = opts();
  o.config_hostpath = "/etc/kube-api-lb";
  const YAML::Node m = render(c, o);
  const YAML::Node vols = m["spec"]["volumes"];
  // The config dir + the CA file's directory; the client pair lives in the config dir. The
  // directory, not the file: a single-file mount would keep the old inode after a rename.
  REQUIRE(vols.size() == 2);
  CHECK(vols[1]["name"].as<std::string>() == "health-tls-1");
  CHECK(vols[1]["hostPath"]["path"].as<std::string>() == "/etc/kubernetes/ssl");
  CHECK(vols[1]["hostPath"]["type"].as<std::string>() == "Directory");
  const YAML::Node mounts = container(m)["volumeMounts"];
  REQUIRE(mounts.size() == 2);
  CHECK(mounts[1]["mountPath"].as<std::string>() == "/etc/kubernetes/ssl");
  CHECK(mounts[1]["name"].as<std::string>() == "health-tls-1");
  CHECK(mounts[1]["readOnly"].as<bool>() == true);

  o.config_hostpath.clear(); // args mode: both directories need mounts, each once
  const YAML::Node m2 = render(c, o);
  const YAML::Node vols2 = m2["spec"]["volumes"];
  REQUIRE(vols2.size() == 2);
  CHECK(vols2[0]["name"].as<std::string>() == "health-tls-1");
  CHECK(vols2[0]["hostPath"]["path"].as<std::string>() == "/etc/kubernetes/ssl");
  CHECK(vols2[1]["name"].as<std::string>() == "health-tls-2");
  CHECK(vols2[1]["hostPath"]["path"].as<std::string>() == "/etc/kube-api-lb");
  CHECK(vols2[1]["hostPath"]["type"].as<std::string>() == "Directory");
  const YAML::Node mounts2 = container(m2)["volumeMounts"];
  REQUIRE(mounts2.size() == 2);
  CHECK(mounts2[1]["mountPath"].as<std::string>() == "/etc/kube-api-lb");
  CHECK(mounts2[1]["readOnly"].as<bool>() == true);
  auto args = strings(container(m2)["args"]);
  CHECK(std::find(args.begin(), args.end(), "--health-ca-file=/etc/kubernetes/ssl/ca.crt") !=
        args.end());

  // A symlink (kubelet's kubelet-client-current.pem) in a directory inside another one's: the
  // outer mount shows it; every file in one directory: one volume.
  c.health.ca_file = "/var/lib/kube/ca.crt";
  c.health.client_cert = "/var/lib/kube/pki/client-current.pem";
  c.health.client_key = "/var/lib/kube/pki/client-current.pem";
  const YAML::Node m3 = render(c, o);
  REQUIRE(m3["spec"]["volumes"].size() == 1);
  CHECK(m3["spec"]["volumes"][0]["hostPath"]["path"].as<std::string>() == "/var/lib/kube");
  c.health.ca_file = "/var/lib/kube/pki/ca.crt";
  const YAML::Node m4 = render(c, o);
  REQUIRE(m4["spec"]["volumes"].size() == 1);
  CHECK(m4["spec"]["volumes"][0]["name"].as<std::string>() == "health-tls-1");
  CHECK(m4["spec"]["volumes"][0]["hostPath"]["path"].as<std::string>() == "/var/lib/kube/pki");
  CHECK(container(m4)["volumeMounts"].size() == 1);

  // Every volume name is a distinct DNS-1123 label.
  c.health.ca_file = "/a/ca.crt";
  c.health.client_cert = "/b/c.crt";
  c.health.client_key = "/c/c.key";
  o.config_hostpath = "/etc/kube-api-lb";
  const YAML::Node m5 = render(c, o);
  std::set<std::string> names;
  for (const auto &v : m5["spec"]["volumes"]) {
    const std::string name = v["name"].as<std::string>();
    CHECK(name.size() <= 63);
    CHECK(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos);
    names.insert(name);
  }
  CHECK(names == std::set<std::string>{"config", "health-tls-1", "health-tls-2", "health-tls-3"});
}

TEST_CASE("config_to_args: only non-defaults, durations in Kubernetes form") {
  Config c = lab_config();
  CHECK(config_to_args(c).size() == 1);

  c.listen = {*parse_host_port("127.0.0.1:6443"), *parse_host_port("[::1]:6443")};
  c.policy = Policy::RoundRobin;
  c.connect_timeout = Millis{500};
  c.idle_timeout = Millis{600000};
  c.half_closed_timeout = Millis{60000};
  c.shutdown_grace = Millis{90000};
  c.health.mode = HealthMode::Tcp;
  c.health.interval = Millis{1500};
  c.health.rise = 3;
  c.admin.listen = {*parse_host_port("127.0.0.1:9090")};
  c.admin.healthz_listen = {*parse_host_port("0.0.0.0:8081")};
  c.log_format = LogFormat::Json;
  c.verbosity = 2;
  CHECK(config_to_args(c) ==
        std::vector<std::string>{
            "--endpoints=192.168.10.11:6443,192.168.10.12:6443,192.168.10.13:6443",
            "--listen=127.0.0.1:6443",
            "--listen=[::1]:6443",
            "--policy=round-robin",
            "--connect-timeout=500ms",
            "--idle-timeout=10m0s",
            "--half-closed-timeout=1m0s",
            "--shutdown-grace=1m30s",
            "--health-check=tcp",
            "--health-interval=1.5s",
            "--health-rise=3",
            "--admin-listen=127.0.0.1:9090",
            "--healthz-listen=0.0.0.0:8081",
            "--log-format=json",
            "--v=2",
        });
  // A longer shutdown grace stretches the pod's termination grace period with it.
  CHECK(render(c, opts())["spec"]["terminationGracePeriodSeconds"].as<int>() == 95);
}

TEST_CASE("manifest: bad options are clear errors, never a crash") {
  const Config good = lab_config();
  struct Case {
    const char *what;
    void (*mutate)(ManifestOptions &);
    const char *error;
  };
  const Case cases[] = {
      {"empty image", [](ManifestOptions &o) { o.image.clear(); }, "--image: must not be empty"},
      {"image with space", [](ManifestOptions &o) { o.image = "a b"; },
       "must not contain whitespace"},
      {"upper-case name", [](ManifestOptions &o) { o.name = "Kube"; },
       "--name \"Kube\": must be a DNS-1123 label"},
      {"long name", [](ManifestOptions &o) { o.name = std::string(64, 'a'); }, "DNS-1123 label"},
      {"bad namespace", [](ManifestOptions &o) { o.pod_namespace = "kube_system"; },
       "--namespace \"kube_system\""},
      {"relative hostpath", [](ManifestOptions &o) { o.config_hostpath = "etc/kal"; },
       "must be an absolute path"},
      {"root hostpath", [](ManifestOptions &o) { o.config_hostpath = "/"; }, "refusing to mount"},
      {"dotdot hostpath", [](ManifestOptions &o) { o.config_hostpath = "/etc/../root"; },
       "must not contain"},
      {"bad memory limit", [](ManifestOptions &o) { o.memory_limit = "64MB"; },
       "--memory-limit: quantity \"64MB\": unknown unit \"MB\""},
      {"no number", [](ManifestOptions &o) { o.memory_limit = "Mi"; },
       "--memory-limit: quantity \"Mi\": expected a number"},
      {"bad cpu", [](ManifestOptions &o) { o.cpu_request = "-1"; },
       "--cpu-request: quantity \"-1\""},
      {"zero limit", [](ManifestOptions &o) { o.memory_limit = "0"; }, "must be greater than 0"},
      {"request above limit", [](ManifestOptions &o) { o.memory_limit = "16Mi"; },
       "--memory-request=32M is above --memory-limit=16Mi"},
      {"cpu request above limit", [](ManifestOptions &o) { o.cpu_limit = "0.01"; },
       "--cpu-request=25m is above --cpu-limit=0.01"},
      {"pull policy", [](ManifestOptions &o) { o.image_pull_policy = "always"; },
       "--image-pull-policy \"always\""},
      {"root user", [](ManifestOptions &o) { o.run_as_user = 0; }, "non-root"},
  };
  for (const auto &tc : cases) {
    const std::string what = tc.what;
    CAPTURE(what);
    ManifestOptions o = opts();
    tc.mutate(o);
    auto r = render_manifest(good, o);
    REQUIRE_FALSE(r.ok());
    CHECK_MESSAGE(r.error().find(tc.error) != std::string::npos, r.error());
  }

  Config no_endpoints;
  auto r = render_manifest(no_endpoints, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("invalid configuration: no endpoints") == 0);

  Config no_admin = lab_config();
  no_admin.admin.listen.clear();
  r = render_manifest(no_admin, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("needs an admin listener") != std::string::npos);

  Config rel = lab_config();
  rel.health.ca_file = "ca.crt";
  r = render_manifest(rel, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("health file \"ca.crt\": must be an absolute path") != std::string::npos);
  // Its directory is mounted: never the host's root, never a path with "..".
  rel.health.ca_file = "/ca.crt";
  r = render_manifest(rel, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("health file \"/ca.crt\": the pod mounts the directory") !=
        std::string::npos);
  rel.health.ca_file = "/etc/kubernetes/../ca.crt";
  r = render_manifest(rel, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("health file \"/etc/kubernetes/../ca.crt\": must not contain") !=
        std::string::npos);
}

TEST_CASE("parse_quantity") {
  CHECK(*parse_quantity("25m") == doctest::Approx(0.025));
  CHECK(*parse_quantity("0.5") == doctest::Approx(0.5));
  CHECK(*parse_quantity("32M") == doctest::Approx(32e6));
  CHECK(*parse_quantity("64Mi") == doctest::Approx(64.0 * 1024 * 1024));
  CHECK(*parse_quantity("1Gi") == doctest::Approx(1073741824.0));
  CHECK_FALSE(parse_quantity("").ok());
  CHECK_FALSE(parse_quantity(".").ok());
  CHECK_FALSE(parse_quantity("1.2.3").ok());
  CHECK_FALSE(parse_quantity("12 Mi").ok());
}

TEST_CASE("manifest: golden files") {
  ManifestOptions o;
  o.image = "kube-api-lb:0.1.0";
  check_golden("manifest-args.yaml", *render_manifest(lab_config(), o));
  o.config_hostpath = "/etc/kube-api-lb";
  check_golden("manifest-hostpath.yaml", *render_manifest(lab_config(), o));
  check_golden("config-hostpath.yaml", render_config_file(lab_config()));
  // Every golden manifest is itself valid YAML with one container.
  for (const char *name : {"manifest-args.yaml", "manifest-hostpath.yaml"}) {
    CAPTURE(name);
    auto m = YAML::LoadFile(std::string(KAL_SOURCE_DIR) + "/tests/data/golden/" + name);
    CHECK(m["spec"]["containers"].size() == 1);
  }
}

TEST_CASE("config_to_args: the proxy's own flag parser reads the args back to the same config") {
  Config c = lab_config();
  c.listen = {*parse_host_port("127.0.0.1:6443"), *parse_host_port("[::1]:6443")};
  c.policy = Policy::RandomTwo;
  c.connect_timeout = Millis{250};
  c.first_byte_timeout = Millis{3000};
  c.idle_timeout = Millis{3600000};
  c.shutdown_grace = Millis{20000};
  c.drain_timeout = Millis{60000};
  c.tcp_user_timeout = Millis{10000};
  c.keepalive_idle = Millis{0};
  c.workers = 2;
  c.health.mode = HealthMode::Tls;
  c.health.path = "/livez";
  c.health.interval = Millis{2000};
  c.health.fast_interval = Millis{100};
  c.health.down_interval = Millis{1500};
  c.health.timeout = Millis{700};
  c.health.rise = 3;
  c.health.fall = 4;
  c.health.slow_start = Millis{30000};
  c.health.ca_file = "/etc/kubernetes/ssl/ca.crt";
  c.health.client_cert = "/etc/kube-api-lb/c.crt";
  c.health.client_key = "/etc/kube-api-lb/c.key";
  c.health.server_name = "kubernetes.default.svc";
  c.admin.listen = {*parse_host_port("127.0.0.1:9443"), *parse_host_port("[::1]:9443")};
  c.admin.healthz_listen = {*parse_host_port("0.0.0.0:8081")};
  c.log_format = LogFormat::Json;
  c.verbosity = 4;
  c.discovery.mode = kal::DiscoveryMode::EndpointSlices;
  c.discovery.kubeconfig = "/etc/kube-api-lb/discovery/kubeconfig";
  c.discovery.state_file = "/var/lib/kube-api-lb/discovery.json";
  c.discovery.debounce = Millis{2000};
  c.discovery.grace = Millis{600000};
  CHECK(fields_without_flags(c).empty());

  auto round_trip = [](const Config &in) {
    CLI::App app;
    FlagValues fv;
    add_config_flags(app, fv);
    std::vector<std::string> args = config_to_args(in);
    std::reverse(args.begin(), args.end()); // CLI11 takes the vector back to front
    app.parse(args);
    auto out = apply_flags(fv, Config{});
    REQUIRE_MESSAGE(out.ok(), out.error());
    return *out;
  };
  CHECK(round_trip(c) == c);
  CHECK(round_trip(lab_config()) == lab_config());

  // Settings with no flag are named, and args mode refuses them rather than dropping them.
  Config j = lab_config();
  j.health.jitter = 0.25;
  j.replay_buffer_limit = 1;
  CHECK(fields_without_flags(j) ==
        std::vector<std::string>{"replayBufferLimit", "healthCheck.jitter"});
  auto r = render_manifest(j, opts());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "the configuration sets replayBufferLimit, healthCheck.jitter, which no "
                     "command-line flag can express; use --config-hostpath to pass it as a config "
                     "file");
  ManifestOptions o = opts();
  o.config_hostpath = "/etc/kube-api-lb";
  CHECK(render_manifest(j, o).ok());
}

TEST_CASE("manifest: discovery mounts the kubeconfig's directory read-only and the state "
          "directory writable") {
  Config c = lab_config();
  c.discovery.mode = kal::DiscoveryMode::EndpointSlices;
  c.discovery.kubeconfig = "/etc/kube-api-lb/discovery/kubeconfig";
  c.discovery.state_file = "/var/lib/kube-api-lb/discovery.json";
  ManifestOptions o = opts();
  const YAML::Node m = render(c, o);
  const YAML::Node vols = m["spec"]["volumes"];
  REQUIRE(vols.size() == 2);
  CHECK(vols[0]["name"].as<std::string>() == "discovery-kubeconfig");
  CHECK(vols[0]["hostPath"]["path"].as<std::string>() == "/etc/kube-api-lb/discovery");
  CHECK(vols[0]["hostPath"]["type"].as<std::string>() == "Directory");
  CHECK(vols[1]["name"].as<std::string>() == "discovery-state");
  CHECK(vols[1]["hostPath"]["path"].as<std::string>() == "/var/lib/kube-api-lb");
  CHECK(vols[1]["hostPath"]["type"].as<std::string>() == "DirectoryOrCreate");
  const YAML::Node mounts = container(m)["volumeMounts"];
  REQUIRE(mounts.size() == 2);
  CHECK(mounts[0]["readOnly"].as<bool>() == true);
  CHECK_FALSE(mounts[1]["readOnly"]);
  // The root filesystem stays read-only.
  CHECK(container(m)["securityContext"]["readOnlyRootFilesystem"].as<bool>() == true);
  auto args = strings(container(m)["args"]);
  CHECK(std::find(args.begin(), args.end(), "--discovery=endpointslices") != args.end());
  CHECK(std::find(args.begin(), args.end(), "--state-file=/var/lib/kube-api-lb/discovery.json") !=
        args.end());
  // kubelet makes the state directory root's (0755); an init container gives it to the proxy's
  // user, as root with CAP_CHOWN and CAP_FOWNER and nothing else.
  const YAML::Node init = m["spec"]["initContainers"];
  REQUIRE(init.size() == 1);
  CHECK(init[0]["name"].as<std::string>() == "prepare-state-dir");
  CHECK(init[0]["image"].as<std::string>() == container(m)["image"].as<std::string>());
  CHECK(strings(init[0]["args"]) == std::vector<std::string>{"prepare-state-dir",
                                                             "--dir=/var/lib/kube-api-lb",
                                                             "--owner=65532:65532"});
  const YAML::Node isc = init[0]["securityContext"];
  CHECK(strings(isc["capabilities"]["add"]) == std::vector<std::string>{"CHOWN", "FOWNER"});
  CHECK(strings(isc["capabilities"]["drop"]) == std::vector<std::string>{"ALL"});
  CHECK(isc["runAsUser"].as<int>() == 0);
  CHECK(isc["allowPrivilegeEscalation"].as<bool>() == false);
  CHECK(isc["readOnlyRootFilesystem"].as<bool>() == true);
  // The same resources as the proxy: the pod's QoS class does not change with it.
  CHECK(YAML::Dump(init[0]["resources"]) == YAML::Dump(container(m)["resources"]));
  REQUIRE(init[0]["volumeMounts"].size() == 1);
  CHECK(init[0]["volumeMounts"][0]["name"].as<std::string>() == "discovery-state");
  CHECK(init[0]["volumeMounts"][0]["mountPath"].as<std::string>() == "/var/lib/kube-api-lb");
  o.run_as_user = 1000;
  o.run_as_group = 2000;
  CHECK(strings(render(c, o)["spec"]["initContainers"][0]["args"])[2] == "--owner=1000:2000");
  o = opts();
  // The state directory is handed to the proxy's user: never one the credentials live in.
  {
    Config shared = c;
    shared.discovery.state_file = "/etc/kube-api-lb/discovery/state.json";
    auto r = render_manifest(shared, o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() ==
          "--state-file \"/etc/kube-api-lb/discovery/state.json\": its directory "
          "/etc/kube-api-lb/discovery is shared with the credentials in "
          "/etc/kube-api-lb/discovery; give it a directory of its own (e.g. "
          "/var/lib/kube-api-lb/discovery.json), which the pod hands to the proxy's user");
    shared.discovery.state_file = "/etc/kube-api-lb/state.json"; // the parent of the kubeconfig's
    CHECK_FALSE(render_manifest(shared, o).ok());
  }
  // Without a state file: nothing to hand over, no init container.
  Config no_state = c;
  no_state.discovery.state_file.clear();
  CHECK_FALSE(render(no_state, o)["spec"]["initContainers"]);
  CHECK_FALSE(render(lab_config(), o)["spec"]["initContainers"]);

  // Inside the read-only config directory: the kubeconfig needs no mount of its own, the state
  // file cannot live there.
  o.config_hostpath = "/etc/kube-api-lb";
  c.discovery.state_file = "/etc/kube-api-lb/state.json";
  auto bad = render_manifest(c, o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == "--state-file \"/etc/kube-api-lb/state.json\": must not be inside "
                       "--config-hostpath, which is mounted read-only");
  c.discovery.state_file = "/var/lib/kube-api-lb/discovery.json";
  const YAML::Node m2 = render(c, o);
  REQUIRE(m2["spec"]["volumes"].size() == 2);
  CHECK(m2["spec"]["volumes"][0]["name"].as<std::string>() == "config");
  CHECK(m2["spec"]["volumes"][1]["name"].as<std::string>() == "discovery-state");
  c.discovery.kubeconfig = "kubeconfig";
  o.config_hostpath.clear();
  auto rel = render_manifest(c, o);
  REQUIRE_FALSE(rel.ok());
  CHECK(rel.error() == "--discovery-kubeconfig \"kubeconfig\": must be an absolute path");
}

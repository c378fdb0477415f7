import ABNTestSupport
import Foundation
import Testing

/// Three hosts made of network namespaces (launch/local-cluster.sh), Open MPI across them over
/// TCP: `launch/verify.sh` and 12 training steps through `launch/train.sh --hostfile` with an
/// mpirun option passed through, against one process (judged against the measured noise floor,
/// with an unsynchronized control). Needs root and `ip netns`; reported as
/// skipped, with the reason, where they are missing.
@Suite("Several hosts", .serialized)
struct MultiHostTests {
    /// Names its own cluster and subnet, so that a cluster a user brought up is left alone.
    static let environment = ["ABN_CLUSTER_NAME": "abntest\(getpid())", "ABN_CLUSTER_SUBNET": "10.231.9"]
    static let subnet = "10.231.9.0/24"

    func cluster(_ arguments: [String]) throws -> BinaryRunner.Output {
        try BinaryRunner.script("launch/local-cluster.sh", arguments, environment: Self.environment)
    }

    /// nil when namespaces and mpirun are usable here, else why not.
    func unavailable() -> String? {
        if getuid() != 0 { return "network namespaces need root (the tests run as uid \(getuid()))" }
        guard let probe = try? BinaryRunner.command("/usr/bin/env", ["sh", "-c", "command -v mpirun && ip netns add abnprobe\(getpid()) && ip netns del abnprobe\(getpid())"], environment: [:]) else {
            return "cannot run sh"
        }
        return probe.status == 0 ? nil : "mpirun or `ip netns add` is not available here: \(probe.stderr)"
    }

    /// Received and sent bytes of each host's interface, by host name.
    func interfaceBytes() throws -> [String: (rx: Int, tx: Int)] {
        let output = try cluster(["bytes"])
        var result: [String: (rx: Int, tx: Int)] = [:]
        for line in output.stdout.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            if f.count == 3, let rx = Int(f[1]), let tx = Int(f[2]) { result[String(f[0])] = (rx, tx) }
        }
        return result
    }

    @Test("verify and 12 training steps on 3 namespace hosts match one process, with traffic between the hosts")
    func threeHosts() throws {
        if let reason = unavailable() {
            print("Several hosts: skipped: \(reason)")
            try Test.cancel("skipped: \(reason)")
        }
        let up = try cluster(["up", "3"])
        defer { _ = try? cluster(["down"]) }
        try #require(up.status == 0, "local-cluster up failed: \(up.stderr)")
        let hostfile = try cluster(["hostfile"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let before = try interfaceBytes()
        let launch = ["-n", "3", "--hostfile", hostfile, "--threads-per-rank", "1", "--mca", "btl_tcp_if_include", Self.subnet, "--"]

        let verify = try cluster(["exec", "h1", "launch/verify.sh"] + launch
                                 + ["configs/tiny.yaml", "--steps", "3", "--set", "train.global_batch=31", "--json"])
        print("Several hosts: verify: " + (verify.stdout.split(separator: "\n").last.map(String.init) ?? "no output"))
        #expect(verify.status == 0, "stderr: \(verify.stderr)")
        #expect(verify.stderr.contains("3 rank(s) over the hostfile's hosts (h1: 1, h2: 1, h3: 1); 1 thread(s) per rank"),
                "the launch line is missing: \(verify.stderr)")
        let summary = try #require(verify.jsonLines.first { $0["kind"] as? String == "summary" }, "no summary: \(verify.stderr)")
        #expect(summary["world_size"] as? Int == 3)
        #expect(summary["synchronized_matches"] as? Bool == true)
        #expect(summary["control_differs"] as? Bool == true, "the unsynchronized control matched: the check could not fail")

        let common = ["--max-steps", "12", "--set", "train.global_batch=31", "--set", "train.log_every=1", "--set", "train.evaluate=false"]
        let hostsDir = runDirectory("hosts"), controlDir = runDirectory("hosts-unsynced")
        let train = try cluster(["exec", "h1", "launch/train.sh"] + launch + ["configs/tiny.yaml", "--run-dir", hostsDir] + common)
        #expect(train.status == 0, "stderr: \(train.stderr)")
        let after = try interfaceBytes()
        let control = try cluster(["exec", "h1", "launch/train.sh"] + launch + ["configs/tiny.yaml", "--run-dir", controlDir, "--set", "model.sync=false"] + common)
        #expect(control.status == 0, "stderr: \(control.stderr)")
        let yardstick = try LossYardstick.measure("configs/tiny.yaml", common, name: "hosts")
        print("Several hosts: 12 steps, 3 hosts vs 1 process, judged against the measured noise floor")
        yardstick.expectMatch(try losses(hostsDir), control: try losses(controlDir))

        for host in ["h1", "h2", "h3"] {
            let rx = (after[host]?.rx ?? 0) - (before[host]?.rx ?? 0), tx = (after[host]?.tx ?? 0) - (before[host]?.tx ?? 0)
            print("Several hosts: \(host) eth0 received \(rx) and sent \(tx) bytes")
            #expect(rx > 100_000 && tx > 100_000, "\(host) exchanged \(rx)/\(tx) bytes: the ranks did not talk across hosts")
        }
        for dir in [hostsDir, controlDir] { try? FileManager.default.removeItem(atPath: dir) }
    }
}

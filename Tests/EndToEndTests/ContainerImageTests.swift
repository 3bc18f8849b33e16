import Foundation
import StagecraftTesting
import Testing

/// The serving image's Dockerfile, checked by hadolint. No container engine runs here: the image is not built.
@Suite struct ContainerImageTests {
    private static let hadolint = Fixtures.packageRoot + "/.venv-lint/bin/hadolint"

    @Test func dockerfilePassesHadolint() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.hadolint) else {
            Issue.record("hadolint is missing: run scripts/setup --for-tests (scripts/test does; it creates .venv-lint)")
            return
        }
        let run = try ProcessRunner.run(Self.hadolint, ["--no-color", Fixtures.packageRoot + "/Dockerfile"])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.isEmpty)
        // The same linter does find the faults it is there for (an unpinned package, a root user, no tag).
        let scratch = NSTemporaryDirectory() + "stagecraft-Dockerfile-\(UUID().uuidString.prefix(8))"
        try "FROM debian\nRUN apt-get install curl\nUSER root\n".write(toFile: scratch, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let bad = try ProcessRunner.run(Self.hadolint, ["--no-color", scratch])
        #expect(bad.status == 1)
        for rule in ["DL3006", "DL3008", "DL3002"] { #expect(bad.stdout.contains(rule), "\(bad.stdout)") }
    }

    @Test func dockerfileIsTheServingImageTheTargetsExpect() throws {
        let text = try String(contentsOfFile: Fixtures.packageRoot + "/Dockerfile", encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") }
        // Two stages: the toolchain builds a release binary with the Swift runtime linked in; a slim runtime runs it.
        #expect(lines.filter { $0.hasPrefix("FROM ") }.map { $0.split(separator: " ")[1] } == ["swift:6.3.1-bookworm", "debian:bookworm-slim"])
        #expect(text.contains("swift build -c release --static-swift-stdlib --product stagecraft"))
        for library in ["libgit2-1.5", "ca-certificates", "libsqlite3-0"] { #expect(text.contains(library)) }
        // Not root, a health check on /ping, and the binary as the entry point (SageMaker passes `serve`).
        #expect(lines.contains("USER 10001"))
        #expect(text.contains("HEALTHCHECK") && text.contains("/ping"))
        #expect(lines.contains(#"ENTRYPOINT ["stagecraft"]"#) && lines.contains(#"CMD ["serve"]"#))
    }
}

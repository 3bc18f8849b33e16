import Foundation
import StagecraftTesting
import Testing

/// `docs/ci/github-actions.yml`, the CI example: valid against the GitHub workflow schema (check-jsonschema's own
/// copy, offline), every `run:` block clean under shellcheck (as bash runs it), no expression spliced into a script,
/// and the behaviour it promises. (actionlint itself cannot be installed here: its package downloads the binary from
/// GitHub.)
@Suite struct CIExampleTests {
    static let lint = Fixtures.packageRoot + "/.venv-lint/bin"
    static let workflow = Fixtures.packageRoot + "/docs/ci/github-actions.yml"

    static func schemaCheck(_ path: String) throws -> ProcessOutput {
        try ProcessRunner.run(lint + "/check-jsonschema", ["--builtin-schema", "vendor.github-workflows", path])
    }

    /// Each step's `run:` script, by step name, read with the YAML parser check-jsonschema uses.
    static func runBlocks(_ path: String) throws -> [String: String] {
        let script = """
            import json, sys
            from ruamel.yaml import YAML
            workflow = YAML(typ="safe").load(open(sys.argv[1]))
            print(json.dumps({f"{job}/{step.get('name', index)}": step["run"] for job, body in workflow["jobs"].items()
                              for index, step in enumerate(body["steps"]) if "run" in step}))
            """
        let output = try ProcessRunner.run(lint + "/python", ["-c", script, path])
        return try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: String] ?? [:]
    }

    static func shellcheck(_ script: String) throws -> ProcessOutput {
        let file = NSTemporaryDirectory() + "stagecraft-run-\(UUID().uuidString.prefix(8)).sh"
        try ("#!/usr/bin/env bash\n" + script).write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try ProcessRunner.run("/usr/bin/env", ["shellcheck", "-s", "bash", file])
    }

    @Test func theWorkflowIsValidAndItsScriptsAreClean() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.lint + "/check-jsonschema"),
            (try? ProcessRunner.run("/usr/bin/env", ["shellcheck", "--version"]))?.status == 0
        else {
            Issue.record("check-jsonschema or shellcheck is missing: run scripts/setup --for-tests (scripts/test does)")
            return
        }
        let check = try Self.schemaCheck(Self.workflow)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        let blocks = try Self.runBlocks(Self.workflow)
        #expect(blocks.keys.sorted() == ["plan/Comment what would change in qa", "plan/Plan qa at the pull request's head", "reconcile/Reconcile qa"])
        for (name, script) in blocks {
            let lint = try Self.shellcheck(script)
            #expect(lint.status == 0, "\(name): \(lint.stdout)")
            // Values from the event reach scripts through env:, never spliced in (script injection).
            #expect(!script.contains("${{"), "\(name) splices an expression into its script")
        }
        // What it promises: plan's exit 2 becomes a comment, other failures fail; reconcile writes JUnit and uploads it.
        let plan = try #require(blocks["plan/Plan qa at the pull request's head"])
        #expect(plan.contains("stagecraft plan --env qa --ref \"$HEAD_SHA\"") && plan.contains(#"[ "$code" -ne 2 ]"#))
        let text = try String(contentsOfFile: Self.workflow, encoding: .utf8)
        #expect(text.contains("if: steps.plan.outputs.exit == '2'") && text.contains("gh pr comment"))
        #expect(blocks["reconcile/Reconcile qa"] == "stagecraft reconcile --env qa --ref \"$GITHUB_SHA\" --junit qa-gates.xml")
        #expect(text.contains("uses: actions/upload-artifact@v4") && text.contains("path: qa-gates.xml"))
        #expect(text.contains("- \"environments/**\""))

        // The same checks catch the faults they are there for: a misspelt key, and an unquoted variable.
        let broken = NSTemporaryDirectory() + "stagecraft-workflow-\(UUID().uuidString.prefix(8)).yml"
        try text.replacingOccurrences(of: "runs-on:", with: "run-on:").write(toFile: broken, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: broken) }
        #expect(try Self.schemaCheck(broken).status != 0)
        let sloppy = try Self.shellcheck("code=$?\nif [ $code -ne 2 ]; then exit $code; fi\ncat $PLAN_FILE\n")
        #expect(sloppy.status != 0 && sloppy.stdout.contains("SC2086"), "\(sloppy.stdout)")
    }
}

import Foundation
import GitStore
import Reconciler
import Registry
import StagecraftTesting
import Testing

@Suite struct HistoryTests {
    func entries(_ scratch: ScratchRepository) throws -> [HistoryEntry] {
        let workspace = try Workspace(repository: try Repository.open(at: scratch.path), toolVersion: "test")
        return try History(workspace: workspace, state: try workspace.openState()).entries(environments: ["qa"], model: nil, since: nil, ref: "HEAD")
    }

    @Test func theCacheGivesWhatAWalkGivesAndLaterRunsWalkOnlyNewCommits() throws {
        let scratch = try ScratchRepository.example()
        let qa = try scratch.directory.read("environments/qa.yaml")
        for index in 0..<5 {
            try scratch.commit(["environments/qa.yaml": qa + "# change \(index)\n"],
                               message: "qa change \(index)\twith a tab\n\nBody line.\n\nStagecraft-Model: penguins\nStagecraft-Evidence: a\\b, c\u{1E}d")
            try scratch.commit(["README.md": "unrelated \(index)\n"], message: "unrelated \(index)")
        }
        let first = try entries(scratch)
        let gitLog = try scratch.gitLine(["log", "--format=%H", "--", "environments/qa.yaml"]).split(separator: "\n").map(String.init)
        #expect(first.map(\.commit) == gitLog)
        #expect(first[0].summary == "qa change 4\twith a tab")
        #expect(first[0].trailers == [Trailer(key: "Stagecraft-Model", value: "penguins"), Trailer(key: "Stagecraft-Evidence", value: "a\\b, c\u{1E}d")])
        let cacheFile = scratch.directory.appending(".stagecraft/cache/history/environments_qa.yaml.cache")
        #expect(FileManager.default.fileExists(atPath: cacheFile))

        // From the cache: the same entries.
        #expect(try entries(scratch) == first)

        // New commits: only they are walked (the cache's older part is kept as is, so a marker in it shows).
        let marked = try String(contentsOfFile: cacheFile, encoding: .utf8).replacingOccurrences(of: "qa change 0", with: "qa change 0 (from the cache)")
        try marked.write(toFile: cacheFile, atomically: true, encoding: .utf8)
        try scratch.commit(["environments/qa.yaml": qa + "# change 5\n"], message: "qa change 5")
        let later = try entries(scratch)
        #expect(later.map(\.commit) == (try scratch.gitLine(["log", "--format=%H", "--", "environments/qa.yaml"]).split(separator: "\n").map(String.init)))
        #expect(later.contains { $0.summary == "qa change 0 (from the cache)\twith a tab" })

        // History rewritten under the cache (the cached tip is no longer an ancestor): a full walk again.
        try scratch.git(["reset", "-q", "--hard", "HEAD~3"])
        let rewritten = try entries(scratch)
        #expect(rewritten.map(\.commit) == (try scratch.gitLine(["log", "--format=%H", "--", "environments/qa.yaml"]).split(separator: "\n").map(String.init)))
        #expect(!rewritten.contains { $0.summary.contains("(from the cache)") })
    }
}

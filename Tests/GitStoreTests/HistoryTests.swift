import Foundation
import GitStore
import StagecraftTesting
import Testing

@Suite struct HistoryTests {
    @Test func pathHistoryEqualsGitLogOnTwoThousandCommits() throws {
        let scratch = try ScratchRepository()
        // 2,400 commits over 6 files in 2 folders, with contents that sometimes repeat (a revert is a change too).
        try scratch.fastImport(count: 2_400, file: { i in
            ["environments/dev.yaml", "environments/qa.yaml", "environments/prod.yaml", "manifests/a.yaml", "manifests/b.yaml", "README.md"][i % 6 == 5 ? 5 : (i * 7) % 5]
        }, contents: { i in "value: \(i % 97)\n" })
        let repository = try Repository.open(at: scratch.path)
        let head = try repository.resolve("HEAD")
        for path in ["environments/prod.yaml", "environments/dev.yaml", "manifests/a.yaml", "README.md", "environments", "manifests", "missing.txt"] {
            let expected = try scratch.git(["log", "--format=%H", "--", path]).split(separator: "\n").map(String.init)
            let actual = try repository.history(of: path, from: head).map(\.hex)
            #expect(actual == expected, "history of \(path)")
        }
        #expect(try repository.history(of: "environments/prod.yaml", from: head).count > 300)
        #expect(try repository.history(of: "environments", from: head, limit: 5).map(\.hex)
                == Array(try scratch.git(["log", "--format=%H", "-5", "--", "environments"]).split(separator: "\n").map(String.init)))
    }

    @Test func mergesAreSimplifiedAsGitLogDoes() throws {
        let scratch = try ScratchRepository()
        let day = 86_400.0
        var time = Date(timeIntervalSince1970: 1_700_000_000)
        func next() -> Date { time += day; return time }
        try scratch.commit(["environments/qa.yaml": "v: 1\n", "other.txt": "1"], date: next())
        try scratch.git(["checkout", "-q", "-b", "feature"])
        try scratch.commit(["environments/qa.yaml": "v: 2\n"], message: "feature change", date: next())
        try scratch.git(["checkout", "-q", "main"])
        try scratch.commit(["other.txt": "2"], message: "unrelated", date: next())
        let stamp = "\(Int(next().timeIntervalSince1970)) +0000"
        try scratch.git(["merge", "-q", "--no-ff", "-m", "merge feature", "feature"],
                        environment: ["GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp])
        try scratch.git(["checkout", "-q", "-b", "side", "HEAD~1"])
        try scratch.commit(["environments/qa.yaml": "v: 3\n"], message: "side change", date: next())
        try scratch.git(["checkout", "-q", "main"])
        try scratch.commit(["environments/qa.yaml": "v: 4\n"], message: "main change", date: next())
        let mergeStamp = "\(Int(next().timeIntervalSince1970)) +0000"
        _ = try? scratch.git(["merge", "-q", "-m", "conflicting merge", "side"], environment: ["GIT_AUTHOR_DATE": mergeStamp, "GIT_COMMITTER_DATE": mergeStamp])
        try scratch.directory.write("v: 5\n", to: "environments/qa.yaml")
        try scratch.git(["add", "-A"])
        try scratch.git(["commit", "-q", "--no-edit"], environment: ["GIT_AUTHOR_DATE": mergeStamp, "GIT_COMMITTER_DATE": mergeStamp])

        let repository = try Repository.open(at: scratch.path)
        let head = try repository.resolve("HEAD")
        for path in ["environments/qa.yaml", "other.txt", "environments", ""] {
            let arguments = ["log", "--format=%H", "--", path.isEmpty ? "." : path]
            let expected = try scratch.git(arguments).split(separator: "\n").map(String.init)
            #expect(try repository.history(of: path, from: head).map(\.hex) == expected, "history of '\(path)'")
        }
    }
}

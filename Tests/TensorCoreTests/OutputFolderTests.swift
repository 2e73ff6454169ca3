import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct SHA256Tests {
    /// The examples of FIPS 180-4's appendix (NIST's "SHA256.pdf" example values), which every
    /// implementation must reproduce.
    @Test func fipsExamples() {
        #expect(SHA256.hexDigest(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hexDigest(of: [UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SHA256.hexDigest(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var million = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { million.update(chunk) }
        #expect(million.hexDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Fed in pieces of every size, the digest is the one-shot digest (block boundaries and the
    /// buffered tail are handled), and asking for it leaves the hash able to continue.
    @Test func piecesEqualTheWhole() {
        let message = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let whole = SHA256.hexDigest(of: message)
        for piece in [1, 3, 63, 64, 65, 127, 500] {
            var hash = SHA256()
            for start in stride(from: 0, to: message.count, by: piece) {
                hash.update(Array(message[start..<min(start + piece, message.count)]))
                _ = hash.digest()
            }
            #expect(hash.hexDigest() == whole, "pieces of \(piece)")
        }
    }
}

@Suite struct OutputFolderTests {
    struct Settings: Codable, Equatable { let value: Int }

    func tree(_ folder: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in FileManager.default.enumerator(atPath: folder.path)?.compactMap({ $0 as? String }) ?? [] {
            var isFolder: ObjCBool = false
            FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path, isDirectory: &isFolder)
            if !isFolder.boolValue { files[name] = try Data(contentsOf: folder.appendingPathComponent(name)) }
        }
        return files
    }

    /// A subfolder asked for after an interruption removed the staging folder is an error; the
    /// staging folder does not come back for the ending process to leave behind.
    @Test func aRemovedStagingFolderIsNotBroughtBack() throws {
        let parent = try Fixtures.temporaryDirectory()
        let output = try OutputFolder(parent.appendingPathComponent("results"), overwrite: false)
        try output.createFolder("state/overlays")
        #expect(FileManager.default.fileExists(atPath: output.url("state/overlays").path))
        try FileManager.default.removeItem(at: output.staging)
        #expect(throws: OutputError.self) { try output.createFolder("state/overlays") }
        #expect(!FileManager.default.fileExists(atPath: output.staging.path))
        output.discard()
    }

    @Test func aFolderAppearsWholeWithItsManifest() throws {
        let parent = try Fixtures.temporaryDirectory()
        let destination = parent.appendingPathComponent("results")
        let output = try OutputFolder(destination, overwrite: false)
        try output.createFolder("sub")
        try output.write(Data("one".utf8), to: "a.txt")
        let sink = try output.stream("sub/b.bin")
        try sink.append(Data([1, 2, 3]))
        try sink.append(Data([4]))
        try output.finish(sink)
        // Nothing is visible at the destination until the commit.
        #expect(!FileManager.default.fileExists(atPath: destination.path))
        try output.commit(kind: "test", producer: "tests", configuration: Settings(value: 7))
        let files = try tree(destination)
        #expect(files.keys.sorted() == ["a.txt", "manifest.json", "sub/b.bin"])
        let header = try ManifestHeader.verify(destination, kind: "test")
        #expect(header.files == [
            ManifestEntry(path: "a.txt", bytes: 3, sha256: SHA256.hexDigest(of: Array("one".utf8))),
            ManifestEntry(path: "sub/b.bin", bytes: 4, sha256: SHA256.hexDigest(of: [1, 2, 3, 4])),
        ])
        let manifest = try JSONDecoder().decode(Manifest<Settings>.self, from: files["manifest.json"] ?? Data())
        #expect(manifest.configuration == Settings(value: 7) && manifest.producer == "tests")
        // No staging folder is left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["results"])
    }

    @Test func existingFoldersAreReplacedOnlyWhenOursAndAsked() throws {
        let parent = try Fixtures.temporaryDirectory()
        let destination = parent.appendingPathComponent("results")
        func write(_ text: String, overwrite: Bool) throws {
            let output = try OutputFolder(destination, overwrite: overwrite)
            try output.write(Data(text.utf8), to: "\(text).txt")
            try output.commit(kind: "test", producer: "tests", configuration: Settings(value: 1))
        }
        try write("first", overwrite: false)
        #expect(errorText { try write("second", overwrite: false) }.contains("already holds results; pass --overwrite"))
        try write("second", overwrite: true)
        // Replaced, not mixed.
        #expect(try tree(destination).keys.sorted() == ["manifest.json", "second.txt"])
        // A folder we did not write is never replaced, even when asked; an empty one is used.
        let foreign = parent.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("keep".utf8).write(to: foreign.appendingPathComponent("keep.txt"))
        #expect(errorText { _ = try OutputFolder(foreign, overwrite: true) }.contains("was not written by shortcut-detect"))
        let empty = parent.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let output = try OutputFolder(empty, overwrite: false)
        try output.commit(kind: "test", producer: "tests", configuration: Settings(value: 1))
        #expect(try tree(empty).keys.sorted() == ["manifest.json"])
        #expect(errorText { _ = try OutputFolder(foreign.appendingPathComponent("keep.txt"), overwrite: true) }.contains("is not a folder"))
    }

    @Test func aDiscardedRunLeavesThePreviousFolder() throws {
        let parent = try Fixtures.temporaryDirectory()
        let destination = parent.appendingPathComponent("results")
        let first = try OutputFolder(destination, overwrite: false)
        try first.write(Data("old".utf8), to: "old.txt")
        try first.commit(kind: "test", producer: "tests", configuration: Settings(value: 1))
        do {
            let second = try OutputFolder(destination, overwrite: true)
            try second.write(Data("new".utf8), to: "new.txt")
            second.discard()
        }
        #expect(try tree(destination).keys.sorted() == ["manifest.json", "old.txt"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path) == ["results"])
        // A staging folder left by a process that no longer runs is removed by the next run.
        let stale = parent.appendingPathComponent(".results.partial-999999999-1")
        try FileManager.default.createDirectory(at: stale, withIntermediateDirectories: true)
        _ = try OutputFolder(destination, overwrite: true)
        #expect(!FileManager.default.fileExists(atPath: stale.path))
    }

    @Test func verificationNamesWhatChanged() throws {
        let parent = try Fixtures.temporaryDirectory()
        let destination = parent.appendingPathComponent("results")
        let output = try OutputFolder(destination, overwrite: false)
        try output.write(Data("payload".utf8), to: "a.txt")
        try output.commit(kind: "test", producer: "tests", configuration: Settings(value: 1))
        let file = destination.appendingPathComponent("a.txt")
        try Data("payloaD".utf8).write(to: file)
        #expect(errorText { _ = try ManifestHeader.verify(destination, kind: "test") }.contains("does not match its SHA-256"))
        try Data("payload!".utf8).write(to: file)
        #expect(errorText { _ = try ManifestHeader.verify(destination, kind: "test") }.contains("has 8 bytes; the manifest says 7"))
        try Data("payload".utf8).write(to: file)
        try Data().write(to: destination.appendingPathComponent("extra.txt"))
        #expect(errorText { _ = try ManifestHeader.verify(destination, kind: "test") }.contains("extra.txt is not listed in the manifest"))
        try FileManager.default.removeItem(at: destination.appendingPathComponent("extra.txt"))
        try FileManager.default.removeItem(at: file)
        #expect(errorText { _ = try ManifestHeader.verify(destination, kind: "test") }.contains("is listed in the manifest but missing"))
        #expect(errorText { _ = try ManifestHeader.verify(destination, kind: "audit") }.contains("holds test results, not audit results"))
    }
}

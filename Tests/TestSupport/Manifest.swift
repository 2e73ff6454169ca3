import Foundation

/// `Fixtures/models/manifest.json`, written by `tools/export_fixtures.py`.
public struct FixtureManifest: Decodable, Sendable {
    public struct Entry: Decodable, Sendable {
        public struct Output: Decodable, Sendable {
            public let tensor: String
            public let file: String
            public let role: String
        }

        public let name: String
        public let file: String
        public let exporter: String
        public let opset: Int
        public let input: String
        public let outputs: [Output]
    }

    public let models: [Entry]

    /// The committed manifest; empty when it cannot be read, which the fixture tests report as a failure.
    public static let committed: FixtureManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("models/manifest.json")) else { return nil }
        return try? JSONDecoder().decode(FixtureManifest.self, from: data)
    }()
}

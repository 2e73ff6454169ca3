import ArgumentParser
import Foundation
import ShortcutDetect

extension LayerLayout: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { ["nchw", "nhwc", "tokens"] }
}

extension ImageLayout: ExpressibleByArgument {}

/// The layer a command explains when the user names none: what `inspect` suggests.
enum LayerChoice {
    /// `requested` when given, else the suggested layer, announced on standard error.
    static func layer(_ requested: String?, model: Model, size: ImageSize?) throws -> String {
        if let requested { return requested }
        let report = ModelInspection(model: model, imageSize: size.map { ($0.height, $0.width) })
        guard let suggested = report.suggested else {
            let why = report.shapeNote.map { " (\($0))" } ?? ""
            throw ValidationError("no --layer given and `inspect` has no layer to suggest\(why); give --layer")
        }
        let shape = suggested.shape.map { " \($0)" } ?? ""
        let layout = suggested.layout.map { ", \($0)" } ?? ""
        Console.note("using the suggested layer \(suggested.name) (tensor \(suggested.tensor)\(shape)\(layout)); --layer picks another")
        return suggested.name
    }
}

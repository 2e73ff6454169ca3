import Foundation
import ShortcutDetect
import TestSupport
import Testing

@Suite struct RegionSpaceTests {
    /// A white `w` x `h` rectangle at (x, y) on a black picture.
    func picture(width: Int, height: Int, rect: (x: Int, y: Int, w: Int, h: Int)) throws -> RGBImage {
        try RegionMask(rectangles: [(x: rect.x, y: rect.y, width: rect.w, height: rect.h)], height: height, width: width).picture
    }

    let preprocessing = Preprocessing.evaluation(height: 64, width: 64)

    @Test func theMasksSizeDecidesItsSpace() throws {
        // The images' size: image space, through the images' transform (here resize 73 + crop 64).
        let onImages = try RegionMask.resolve(
            picture(width: 100, height: 100, rect: (0, 0, 50, 100)), name: "m.png", space: nil, imageSize: (100, 100),
            preprocessing: preprocessing, inputHeight: 64, inputWidth: 64)
        #expect(onImages.space == .image && onImages.reason.contains("images' size (100x100)"))
        #expect(onImages.reason.contains("resize the shorter side to 73, centre crop 64x64"))
        // 100 -> 73: the left half is 36 or 37 columns, minus the 4-column crop margin.
        #expect(onImages.mask.inside[0] && onImages.mask.inside[31] && !onImages.mask.inside[34])
        // The model's size on images of another size: model space, as is.
        let onModel = try RegionMask.resolve(
            picture(width: 64, height: 64, rect: (0, 0, 10, 10)), name: "m.png", space: nil, imageSize: (100, 100),
            preprocessing: preprocessing, inputHeight: 64, inputWidth: 64)
        #expect(onModel.space == .model && onModel.mask.area == 100.0 / 4096)
        // Images of the model's size: both readings agree, image space, used as is.
        let same = try RegionMask.resolve(
            picture(width: 64, height: 64, rect: (3, 3, 10, 10)), name: "m.png", space: nil, imageSize: (64, 64),
            preprocessing: preprocessing, inputHeight: 64, inputWidth: 64)
        #expect(same.space == .image && same.reason.hasSuffix("(as is)") && same.mask.area == 100.0 / 4096)
    }

    @Test func anythingElseIsAnError() throws {
        func message(_ space: MaskSpace?, mask: (Int, Int), images: (Int, Int)) -> String {
            errorText {
                try RegionMask.resolve(
                    picture(width: mask.0, height: mask.1, rect: (0, 0, 5, 5)), name: "m.png", space: space, imageSize: images,
                    preprocessing: preprocessing, inputHeight: 64, inputWidth: 64)
            }
        }
        #expect(message(nil, mask: (50, 50), images: (100, 100)).contains("m.png is 50x50: neither the images' size (100x100) nor the model's input size (64x64)"))
        #expect(message(.image, mask: (64, 64), images: (100, 100)).contains("--mask-space image: m.png is 64x64 but the images are 100x100"))
        #expect(message(.model, mask: (100, 100), images: (100, 100)).contains("--mask-space model: m.png is 100x100 but the model's input is 64x64"))
        #expect(message(nil, mask: (64, 64), images: (64, 64)) == "no error")
    }

    @Test func packedRegionsRoundTripAndOutline() throws {
        let mask = try RegionMask(rectangles: [(x: 1, y: 1, width: 3, height: 3)], height: 5, width: 6)
        #expect(try RegionMask(packed: mask.packed, height: 5, width: 6) == mask)
        // The ring of the 3x3 square: its centre is not on the outline.
        #expect(mask.outline.filter { $0 }.count == 8 && !mask.outline[2 * 6 + 2])
        #expect(throws: AuditError.self) { try RegionMask(packed: mask.packed, height: 9, width: 9) }
    }
}

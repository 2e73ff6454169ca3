import Foundation

/// Reading and writing NumPy `.npy` files (format versions 1 to 3, C order, little-endian).
extension Tensor {
    private static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY

    private static let npyDescriptors: [(String, DType)] = [
        ("<f4", .float32), ("<f2", .float16), ("<f8", .float64), ("<i8", .int64),
        ("<i4", .int32), ("|i1", .int8), ("|u1", .uint8), ("|b1", .bool),
    ]

    /// Reads a tensor from a `.npy` file.
    public init(npyAt url: URL) throws {
        let path = url.path
        do {
            self = try FileIO.withContents(of: path) { try Tensor.decodeNPY($0, path: path) }
        } catch let error as FileError {
            throw TensorError.npy(path: path, reason: "cannot read it: \(error.reason)")
        }
    }

    /// Decodes a tensor from the bytes of a `.npy` file; `path` only labels errors.
    public init(npyData data: Data, path: String = "<memory>") throws {
        self = try data.withUnsafeBytes { try Tensor.decodeNPY($0, path: path) }
    }

    private static func decodeNPY(_ data: UnsafeRawBufferPointer, path: String) throws -> Tensor {
        func fail(_ reason: String) -> TensorError { .npy(path: path, reason: reason) }
        let bytes = [UInt8](data.prefix(12))
        guard bytes.count >= 10, Array(bytes[0..<6]) == Tensor.npyMagic else {
            throw fail("not a NumPy .npy file (missing the \\x93NUMPY magic)")
        }
        let major = bytes[6]
        let headerStart: Int
        let headerLength: Int
        switch major {
        case 1:
            headerStart = 10
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerStart = 12
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        default:
            throw fail("unsupported .npy format version \(major)")
        }
        guard data.count >= headerStart + headerLength else { throw fail("truncated header") }
        let headerBytes = UnsafeRawBufferPointer(rebasing: data[headerStart..<headerStart + headerLength])
        guard let header = String(bytes: headerBytes, encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw fail("header is not text")
        }
        let descr = try Tensor.npyField("descr", in: header, path: path)
        guard let dtype = Tensor.npyDescriptors.first(where: { $0.0 == descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")) })?.1 else {
            throw fail("unsupported dtype \(descr); expected one of \(Tensor.npyDescriptors.map(\.0).joined(separator: ", "))")
        }
        if try Tensor.npyField("fortran_order", in: header, path: path) != "False" {
            throw fail("Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        let shapeText = try Tensor.npyField("shape", in: header, path: path)
        let shape = try shapeText.trimmingCharacters(in: CharacterSet(charactersIn: "() "))
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { part -> Int in
                guard let dim = Int(part), dim >= 0 else { throw fail("bad shape \(shapeText)") }
                return dim
            }
        // Size the payload from the header and check that the file holds it before allocating
        // anything: a 100-byte header may claim terabytes.
        guard let byteCount = MemoryBudget.product(shape + [dtype.byteSize]) else {
            throw fail("shape \(shape) of \(dtype) holds more bytes than can be addressed")
        }
        let payloadStart = headerStart + headerLength
        guard data.count - payloadStart >= byteCount else {
            throw fail("holds \(data.count - payloadStart) data bytes but shape \(shape) of \(dtype) needs \(byteCount)")
        }
        let tensor: Tensor
        do { tensor = try Tensor(uninitialized: dtype, shape: shape) } catch let error as TensorError {
            throw fail("\(error)")
        }
        if let base = data.baseAddress, byteCount > 0 {
            tensor.storage.base.copyMemory(from: base + payloadStart, byteCount: byteCount)
        }
        return tensor
    }

    /// Extracts the text of one key's value from the header's Python dict literal.
    private static func npyField(_ key: String, in header: String, path: String) throws -> String {
        guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\""),
            let colon = header[keyRange.upperBound...].firstIndex(of: ":")
        else { throw TensorError.npy(path: path, reason: "header has no '\(key)'") }
        var rest = header[header.index(after: colon)...].drop(while: { $0 == " " })
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { throw TensorError.npy(path: path, reason: "bad '\(key)'") }
            return String(rest[...close])
        }
        rest = rest.prefix(while: { $0 != "," && $0 != "}" })
        return rest.trimmingCharacters(in: .whitespaces)
    }

    /// The bytes of a version 1.0 `.npy` file holding this tensor.
    public func npyData() -> Data {
        var data = Tensor.npyHeader(dtype: dtype, shape: shape)
        withUnsafeBytes { data.append(contentsOf: $0) }
        return data
    }

    /// The header of a version 1.0 `.npy` file of this type and shape: its data follows, row-major,
    /// so a file can be written a row at a time.
    public static func npyHeader(dtype: DType, shape: [Int]) -> Data {
        let descr = Tensor.npyDescriptors.first { $0.1 == dtype }?.0 ?? "<f4"  // the table covers every DType
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data(Tensor.npyMagic + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        return data
    }

    /// Writes this tensor as a `.npy` file.
    public func writeNPY(to url: URL) throws {
        do { try FileIO.write(npyData(), to: url) } catch let error as FileError {
            throw TensorError.npy(path: url.path, reason: error.reason)
        }
    }
}

import TensorCore

/// The ONNX `TensorProto.DataType` codes and their mapping to ``DType``.
package enum ONNXDataType {
    /// Names of all ONNX element types, for error messages about the ones we do not support.
    static let names: [Int: String] = [
        0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
        8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
        15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
        20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0",
    ]

    /// The ``DType`` for an ONNX code, or `nil` when we do not support that type.
    package static func dtype(code: Int) -> DType? {
        switch code {
        case 1: .float32
        case 2: .uint8
        case 3: .int8
        case 6: .int32
        case 7: .int64
        case 9: .bool
        case 10: .float16
        case 11: .float64
        default: nil
        }
    }

    /// The ONNX code of a ``DType``.
    package static func code(_ dtype: DType) -> Int {
        switch dtype {
        case .float32: 1
        case .uint8: 2
        case .int8: 3
        case .int32: 6
        case .int64: 7
        case .bool: 9
        case .float16: 10
        case .float64: 11
        }
    }

    /// A readable name for an ONNX code, e.g. `BFLOAT16 (16)`.
    package static func name(code: Int) -> String { "\(names[code] ?? "unknown") (\(code))" }
}

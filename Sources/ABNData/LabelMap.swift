/// How the ids stored in a data set's masks become training classes: a table of 256 entries,
/// each a class id, 255 (ignored), or unmapped (an id the set must not contain).
public struct LabelMap: Sendable, Equatable {
    /// Entry of an id the set must not contain.
    static let unmapped: Int16 = -1
    /// (256) class id, 255 (ignore) or `unmapped`, for each stored id.
    let table: [Int16]

    /// Every id stands for itself (255: ignored).
    public static let identity = LabelMap(table: (0..<256).map { Int16($0) })

    /// reduce_zero_label: 0 (the "other" label of sets like ADE20K) is ignored and every other id
    /// moves down by one; 255 stays ignored.
    public static let reducedZero = LabelMap(table: (0..<256).map { $0 == 0 || $0 == 255 ? 255 : Int16($0 - 1) })

    private init(table: [Int16]) { self.table = table }

    /// The listed ids map to their classes (or 255); every other id is unmapped, except 255,
    /// which stays ignored unless listed.
    public init(pairs: [(id: Int, label: Int)]) {
        var table = [Int16](repeating: Self.unmapped, count: 256)
        table[255] = 255
        for (id, label) in pairs { table[id] = Int16(label) }
        self.table = table
    }

    /// For each of `classes` classes, the stored id it is read from (the lowest, where several
    /// map to it): what an evaluation script of the data set expects. Throws when a class has none.
    public func storedIDs(classes: Int) throws -> [UInt8] {
        try (0..<classes).map { c in
            guard let id = table.firstIndex(of: Int16(c)) else {
                throw DataError("class \(c) is stored under no id in the data set's label map; give data.label_map with an id for every class.")
            }
            return UInt8(id)
        }
    }

    /// The classes of `mask`'s stored ids (1 channel). Throws, naming `source`, at an id that is
    /// unmapped or not below `classes` (255 excepted).
    public func apply(to mask: Image8, classes: Int, source: String) throws -> Image8 {
        var out = mask
        for (i, id) in mask.pixels.enumerated() {
            let label = table[Int(id)]
            guard label == 255 || (label >= 0 && Int(label) < classes) else {
                let why = label == Self.unmapped ? "which the label map does not list" : "which maps to class \(label), outside 0...\(classes - 1)"
                throw DataError("\(source) holds id \(id) at pixel (\(i % mask.width), \(i / mask.width)), \(why); fix the mask, data.label_map or the class list (model.classes).")
            }
            out.pixels[i] = UInt8(label)
        }
        return out
    }
}

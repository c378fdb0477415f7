// swift-tools-version:6.0
// A data-parallel trainer with In-Place Activated BatchNorm (InPlace-ABN), synchronized over MPI.
// Layering (see README): CBLAS/CMPI (C bridges) -> ABNTensor -> ABNLayers -> ABNComm -> ABNTraining -> abn.
import PackageDescription

let package = Package(
    name: "InPlaceABN",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "abn", targets: ["abn"]),
        .library(name: "ABNTensor", targets: ["ABNTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "ABNTensor", dependencies: ["CBLAS"]),
        .executableTarget(name: "abn", dependencies: [
            "ABNTensor",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "ABNTensorTests", dependencies: ["ABNTensor"]),
    ]
)

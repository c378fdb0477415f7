import ABNLayers
import ABNTraining
import ArgumentParser

// The library enums that command-line options take by name.
extension ProgressStyle: ExpressibleByArgument {}
extension GEMMSetting: ExpressibleByArgument {}
extension NormMode: ExpressibleByArgument {}

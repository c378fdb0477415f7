/// Stage depths (residual blocks of each stage) as a network's summary prints them: one number
/// when every stage has the same ("2"), as summaries did before depths were a list (checkpoints
/// store the summary and refuse another), else the list ("[3, 4, 6, 3]").
func stageDepthsSummary(_ blocks: [Int]) -> String {
    Set(blocks).count == 1 ? "\(blocks[0])" : "\(blocks)"
}

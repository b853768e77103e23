"""Input files: OpenAssistant exports (`oasst`), their conversation trees and filters
(`conversations`), held-out prompt files (`eval_prompts`) and text similarity (`similarity`)."""

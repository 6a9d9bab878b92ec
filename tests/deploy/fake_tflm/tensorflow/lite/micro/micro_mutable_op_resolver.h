// Test stand-in for TFLM's MicroMutableOpResolver<N>: the real class's Add*() method names
// (tflite-micro tensorflow/lite/micro/micro_mutable_op_resolver.h), each recording the builtin it
// registers. Like the real one, adding more than N ops or the same op twice fails.
#ifndef FAKE_TFLM_MICRO_MUTABLE_OP_RESOLVER_H_
#define FAKE_TFLM_MICRO_MUTABLE_OP_RESOLVER_H_

#include <cstring>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

namespace tflite {

template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int count() const { return count_; }
  const char* added(unsigned int i) const { return added_[i]; }

  TfLiteStatus AddAbs() { return Add("ABS"); }
  TfLiteStatus AddAdd() { return Add("ADD"); }
  TfLiteStatus AddAddN() { return Add("ADD_N"); }
  TfLiteStatus AddArgMax() { return Add("ARG_MAX"); }
  TfLiteStatus AddArgMin() { return Add("ARG_MIN"); }
  TfLiteStatus AddAssignVariable() { return Add("ASSIGN_VARIABLE"); }
  TfLiteStatus AddAveragePool2D() { return Add("AVERAGE_POOL_2D"); }
  TfLiteStatus AddBatchMatMul() { return Add("BATCH_MATMUL"); }
  TfLiteStatus AddBatchToSpaceNd() { return Add("BATCH_TO_SPACE_ND"); }
  TfLiteStatus AddBroadcastArgs() { return Add("BROADCAST_ARGS"); }
  TfLiteStatus AddBroadcastTo() { return Add("BROADCAST_TO"); }
  TfLiteStatus AddCallOnce() { return Add("CALL_ONCE"); }
  TfLiteStatus AddCast() { return Add("CAST"); }
  TfLiteStatus AddCeil() { return Add("CEIL"); }
  TfLiteStatus AddConcatenation() { return Add("CONCATENATION"); }
  TfLiteStatus AddConv2D() { return Add("CONV_2D"); }
  TfLiteStatus AddCos() { return Add("COS"); }
  TfLiteStatus AddCumSum() { return Add("CUMSUM"); }
  TfLiteStatus AddDepthToSpace() { return Add("DEPTH_TO_SPACE"); }
  TfLiteStatus AddDepthwiseConv2D() { return Add("DEPTHWISE_CONV_2D"); }
  TfLiteStatus AddDequantize() { return Add("DEQUANTIZE"); }
  TfLiteStatus AddDetectionPostprocess() { return Add("CUSTOM:TFLite_Detection_PostProcess"); }
  TfLiteStatus AddDiv() { return Add("DIV"); }
  TfLiteStatus AddElu() { return Add("ELU"); }
  TfLiteStatus AddEmbeddingLookup() { return Add("EMBEDDING_LOOKUP"); }
  TfLiteStatus AddEqual() { return Add("EQUAL"); }
  TfLiteStatus AddExp() { return Add("EXP"); }
  TfLiteStatus AddExpandDims() { return Add("EXPAND_DIMS"); }
  TfLiteStatus AddFill() { return Add("FILL"); }
  TfLiteStatus AddFloor() { return Add("FLOOR"); }
  TfLiteStatus AddFloorDiv() { return Add("FLOOR_DIV"); }
  TfLiteStatus AddFloorMod() { return Add("FLOOR_MOD"); }
  TfLiteStatus AddFullyConnected() { return Add("FULLY_CONNECTED"); }
  TfLiteStatus AddGather() { return Add("GATHER"); }
  TfLiteStatus AddGatherNd() { return Add("GATHER_ND"); }
  TfLiteStatus AddGreater() { return Add("GREATER"); }
  TfLiteStatus AddGreaterEqual() { return Add("GREATER_EQUAL"); }
  TfLiteStatus AddHardSwish() { return Add("HARD_SWISH"); }
  TfLiteStatus AddIf() { return Add("IF"); }
  TfLiteStatus AddL2Normalization() { return Add("L2_NORMALIZATION"); }
  TfLiteStatus AddL2Pool2D() { return Add("L2_POOL_2D"); }
  TfLiteStatus AddLeakyRelu() { return Add("LEAKY_RELU"); }
  TfLiteStatus AddLess() { return Add("LESS"); }
  TfLiteStatus AddLessEqual() { return Add("LESS_EQUAL"); }
  TfLiteStatus AddLog() { return Add("LOG"); }
  TfLiteStatus AddLogSoftmax() { return Add("LOG_SOFTMAX"); }
  TfLiteStatus AddLogicalAnd() { return Add("LOGICAL_AND"); }
  TfLiteStatus AddLogicalNot() { return Add("LOGICAL_NOT"); }
  TfLiteStatus AddLogicalOr() { return Add("LOGICAL_OR"); }
  TfLiteStatus AddLogistic() { return Add("LOGISTIC"); }
  TfLiteStatus AddMaxPool2D() { return Add("MAX_POOL_2D"); }
  TfLiteStatus AddMaximum() { return Add("MAXIMUM"); }
  TfLiteStatus AddMean() { return Add("MEAN"); }
  TfLiteStatus AddMinimum() { return Add("MINIMUM"); }
  TfLiteStatus AddMirrorPad() { return Add("MIRROR_PAD"); }
  TfLiteStatus AddMul() { return Add("MUL"); }
  TfLiteStatus AddNeg() { return Add("NEG"); }
  TfLiteStatus AddNotEqual() { return Add("NOT_EQUAL"); }
  TfLiteStatus AddPack() { return Add("PACK"); }
  TfLiteStatus AddPad() { return Add("PAD"); }
  TfLiteStatus AddPadV2() { return Add("PADV2"); }
  TfLiteStatus AddPrelu() { return Add("PRELU"); }
  TfLiteStatus AddQuantize() { return Add("QUANTIZE"); }
  TfLiteStatus AddReadVariable() { return Add("READ_VARIABLE"); }
  TfLiteStatus AddReduceMax() { return Add("REDUCE_MAX"); }
  TfLiteStatus AddRelu() { return Add("RELU"); }
  TfLiteStatus AddRelu6() { return Add("RELU6"); }
  TfLiteStatus AddReshape() { return Add("RESHAPE"); }
  TfLiteStatus AddResizeBilinear() { return Add("RESIZE_BILINEAR"); }
  TfLiteStatus AddResizeNearestNeighbor() { return Add("RESIZE_NEAREST_NEIGHBOR"); }
  TfLiteStatus AddRound() { return Add("ROUND"); }
  TfLiteStatus AddRsqrt() { return Add("RSQRT"); }
  TfLiteStatus AddSelectV2() { return Add("SELECT_V2"); }
  TfLiteStatus AddShape() { return Add("SHAPE"); }
  TfLiteStatus AddSin() { return Add("SIN"); }
  TfLiteStatus AddSlice() { return Add("SLICE"); }
  TfLiteStatus AddSoftmax() { return Add("SOFTMAX"); }
  TfLiteStatus AddSpaceToBatchNd() { return Add("SPACE_TO_BATCH_ND"); }
  TfLiteStatus AddSpaceToDepth() { return Add("SPACE_TO_DEPTH"); }
  TfLiteStatus AddSplit() { return Add("SPLIT"); }
  TfLiteStatus AddSplitV() { return Add("SPLIT_V"); }
  TfLiteStatus AddSqrt() { return Add("SQRT"); }
  TfLiteStatus AddSquare() { return Add("SQUARE"); }
  TfLiteStatus AddSquaredDifference() { return Add("SQUARED_DIFFERENCE"); }
  TfLiteStatus AddSqueeze() { return Add("SQUEEZE"); }
  TfLiteStatus AddStridedSlice() { return Add("STRIDED_SLICE"); }
  TfLiteStatus AddSub() { return Add("SUB"); }
  TfLiteStatus AddSum() { return Add("SUM"); }
  TfLiteStatus AddSvdf() { return Add("SVDF"); }
  TfLiteStatus AddTanh() { return Add("TANH"); }
  TfLiteStatus AddTranspose() { return Add("TRANSPOSE"); }
  TfLiteStatus AddTransposeConv() { return Add("TRANSPOSE_CONV"); }
  TfLiteStatus AddUnidirectionalSequenceLSTM() { return Add("UNIDIRECTIONAL_SEQUENCE_LSTM"); }
  TfLiteStatus AddUnpack() { return Add("UNPACK"); }
  TfLiteStatus AddVarHandle() { return Add("VAR_HANDLE"); }
  TfLiteStatus AddWhile() { return Add("WHILE"); }
  TfLiteStatus AddZerosLike() { return Add("ZEROS_LIKE"); }

 private:
  TfLiteStatus Add(const char* builtin) {
    for (unsigned int i = 0; i < count_; ++i) {
      if (std::strcmp(added_[i], builtin) == 0) return kTfLiteError;
    }
    if (count_ >= tOpCount) return kTfLiteError;
    added_[count_++] = builtin;
    return kTfLiteOk;
  }
  const char* added_[tOpCount > 0 ? tOpCount : 1] = {};
  unsigned int count_ = 0;
};

}  // namespace tflite

#endif

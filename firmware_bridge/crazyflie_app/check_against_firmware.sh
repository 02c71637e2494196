#!/usr/bin/env bash
# Compile quadhil_app.c against a real crazyflie-firmware checkout's headers, with the firmware's own
# compiler flags (Makefile ARCH_CFLAGS + tools/kbuild/Makefile.kbuild KBUILD_CFLAGS), plus -Wextra -Werror.
# A quick check without a full kbuild build: no link, no other firmware sources.
#
#   CRAZYFLIE_BASE=/path/to/crazyflie-firmware ./check_against_firmware.sh
#
# kbuild's build/include/generated/autoconf.h is used when the checkout has been configured
# (make ... once); otherwise a minimal one with the CONFIG_ values of ./app-config is generated.
# Extra compiler flags: CHECK_CFLAGS="-Os" etc. Compiler: CROSS_COMPILE (default arm-none-eabi-).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
base="${CRAZYFLIE_BASE:?set CRAZYFLIE_BASE to a crazyflie-firmware checkout}"
cc="${CROSS_COMPILE:-arm-none-eabi-}gcc"
[ -f "$base/src/modules/interface/app.h" ] || { echo "not a crazyflie-firmware checkout: $base" >&2; exit 2; }
[ -f "$base/vendor/FreeRTOS/include/FreeRTOS.h" ] || {
  echo "$base/vendor/FreeRTOS is empty: run 'git submodule update --init' in the checkout" >&2; exit 2; }
command -v "$cc" >/dev/null || { echo "$cc not found (Debian: apt-get install gcc-arm-none-eabi)" >&2; exit 2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
autoconf="$base/build/include/generated/autoconf.h"
if [ ! -f "$autoconf" ]; then
  autoconf="$tmp/autoconf.h"
  # app-config lines CONFIG_X=y / CONFIG_X=N become #define CONFIG_X 1 / N
  sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*\)=y$/#define \1 1/p' \
         -e 's/^\(CONFIG_[A-Za-z0-9_]*\)=\([0-9][0-9]*\)$/#define \1 \2/p' "$here/app-config" > "$autoconf"
fi

inc=(
  -I"$base/vendor/CMSIS/CMSIS/Core/Include" -I"$base/vendor/CMSIS/CMSIS/DSP/Include"
  -I"$base/vendor/FreeRTOS/include" -I"$base/vendor/FreeRTOS/portable/GCC/ARM_CM4F"
  -I"$base/src/config" -I"$base/src/platform/interface"
  -I"$base/src/deck/interface" -I"$base/src/deck/drivers/interface"
  -I"$base/src/drivers/interface" -I"$base/src/drivers/bosch/interface" -I"$base/src/drivers/esp32/interface"
  -I"$base/src/hal/interface"
  -I"$base/src/modules/interface" -I"$base/src/modules/interface/kalman_core"
  -I"$base/src/modules/interface/lighthouse" -I"$base/src/modules/interface/outlierfilter"
  -I"$base/src/modules/interface/cpx" -I"$base/src/modules/interface/p2pDTR"
  -I"$base/src/modules/interface/controller" -I"$base/src/modules/interface/estimator"
  -I"$base/src/utils/interface" -I"$base/src/utils/interface/kve"
  -I"$base/src/utils/interface/lighthouse" -I"$base/src/utils/interface/tdoa"
  -I"$base/src/lib/CMSIS/STM32F4xx/Include" -I"$base/src/lib/STM32F4xx_StdPeriph_Driver/inc"
  -I"$here/src"
)
flags=(
  -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
  -fno-math-errno -DARM_MATH_CM4 -D__FPU_PRESENT=1 -mfp16-format=ieee
  -DSTM32F4XX -DSTM32F40_41xxx -DHSE_VALUE=8000000 -DUSE_STDPERIPH_DRIVER
  -D__firmware__ -DCRAZYFLIE_FW -std=gnu11
  -Wall -Wmissing-braces -fno-strict-aliasing -ffunction-sections -fdata-sections -Wdouble-promotion
  -Os -Werror -Wextra
  -include "$autoconf"
)
# shellcheck disable=SC2086
"$cc" "${flags[@]}" ${CHECK_CFLAGS:-} "${inc[@]}" -c "$here/src/quadhil_app.c" -o "$tmp/quadhil_app.o"
"${CROSS_COMPILE:-arm-none-eabi-}size" "$tmp/quadhil_app.o"
echo "quadhil_app.c compiles against $base"

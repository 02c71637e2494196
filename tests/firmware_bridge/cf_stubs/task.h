/* FreeRTOS task.h (test stub) */
#pragma once
TickType_t xTaskGetTickCount(void);
void vPortEnterCritical(void);
void vPortExitCritical(void);
#define taskENTER_CRITICAL() vPortEnterCritical()
#define taskEXIT_CRITICAL() vPortExitCritical()

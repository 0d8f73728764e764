// The four delivery charts of the home page (ECharts, loaded with the page
// that shows them).
import { BarChart, LineChart } from 'echarts/charts';
import { GridComponent, TitleComponent, TooltipComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';
import { Card, Col, Row, Statistic } from 'antd';
import { useEffect, useRef } from 'react';
import { useTranslation } from 'react-i18next';

echarts.use([BarChart, LineChart, GridComponent, TitleComponent, TooltipComponent, CanvasRenderer]);

export interface Bucket {
  start: string;
  deployments: number;
  changeFailureRate?: number | null;
  leadTimeP50Seconds?: number | null;
  timeToRestoreP50Seconds?: number | null;
}

function Chart({ title, kind, days, values, testId }: { title: string; kind: 'bar' | 'line'; days: string[]; values: (number | null)[]; testId: string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const chart = echarts.init(el.current);
    chart.setOption({
      title: { text: title, textStyle: { fontSize: 13 } },
      tooltip: { trigger: 'axis' },
      grid: { left: 40, right: 12, top: 36, bottom: 24 },
      xAxis: { type: 'category', data: days },
      yAxis: { type: 'value' },
      series: [{ type: kind, data: values, connectNulls: true, itemStyle: { color: '#4f46e5' } }],
    });
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [title, kind, days, values]);
  return <div ref={el} data-testid={testId} style={{ height: 200 }} />;
}

const minutes = (s?: number | null) => (s == null ? null : Math.round((s / 60) * 10) / 10);

export default function DeliveryCharts({ buckets, totals }: { buckets: Bucket[]; totals: Bucket }) {
  const { t } = useTranslation();
  const days = buckets.map((b) => b.start.slice(5, 10));
  return (
    <>
      <Row gutter={16} style={{ marginBottom: 16 }}>
        <Col span={6}><Statistic title={t('home.frequency')} value={totals.deployments} /></Col>
        <Col span={6}><Statistic title={t('home.leadTime')} value={minutes(totals.leadTimeP50Seconds) ?? '—'} /></Col>
        <Col span={6}><Statistic title={t('home.failureRate')} value={totals.changeFailureRate == null ? '—' : `${Math.round(totals.changeFailureRate * 100)}%`} /></Col>
        <Col span={6}><Statistic title={t('home.restore')} value={minutes(totals.timeToRestoreP50Seconds) ?? '—'} /></Col>
      </Row>
      <Row gutter={16}>
        <Col span={12}><Card size="small"><Chart testId="chart-frequency" title={t('home.frequency')} kind="bar" days={days} values={buckets.map((b) => b.deployments)} /></Card></Col>
        <Col span={12}><Card size="small"><Chart testId="chart-lead" title={t('home.leadTime')} kind="line" days={days} values={buckets.map((b) => minutes(b.leadTimeP50Seconds))} /></Card></Col>
        <Col span={12} style={{ marginTop: 16 }}><Card size="small"><Chart testId="chart-failure" title={t('home.failureRate')} kind="line" days={days} values={buckets.map((b) => (b.changeFailureRate == null ? null : Math.round(b.changeFailureRate * 100)))} /></Card></Col>
        <Col span={12} style={{ marginTop: 16 }}><Card size="small"><Chart testId="chart-restore" title={t('home.restore')} kind="line" days={days} values={buckets.map((b) => minutes(b.timeToRestoreP50Seconds))} /></Card></Col>
      </Row>
    </>
  );
}
